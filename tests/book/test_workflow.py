"""The deployment workflow (.github/workflows/deploy.yml): valid YAML, the ecosystem's Pages actions,
the agreed build targets and output paths, and no teacher material on the public site."""
import pathlib
import re

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "deploy.yml"


@pytest.fixture(scope="module")
def wf():
    return yaml.safe_load(WORKFLOW.read_text())


def steps(wf, job):
    return wf["jobs"][job]["steps"]


def uses(step):
    return step.get("uses", "").split("@")[0]


def step_using(wf, job, action):
    found = [s for s in steps(wf, job) if uses(s) == action]
    assert found, f"job {job!r} has no step using {action}"
    return found


def runs(wf, job):
    return "\n".join(s.get("run", "") for s in steps(wf, job))


def test_triggers_and_concurrency(wf):
    on = wf.get("on", wf.get(True))  # YAML 1.1 reads the bare key `on` as True
    assert on["push"]["branches"] == ["main"]
    assert "workflow_dispatch" in on
    assert wf["concurrency"]["group"] == "pages"
    assert wf["concurrency"]["cancel-in-progress"] is False


def test_permissions_are_least_privilege(wf):
    assert wf["permissions"] == {"contents": "read"}
    assert wf["jobs"]["deploy"]["permissions"] == {"pages": "write", "id-token": "write"}
    # only the build job writes to the repository (the colab branch)
    assert wf["jobs"]["build"]["permissions"] == {"contents": "write"}


def test_every_action_is_pinned_to_a_major_version(wf):
    for job in wf["jobs"]:
        for s in steps(wf, job):
            if "uses" in s:
                assert re.fullmatch(r"[\w.-]+/[\w.-]+@v\d+", s["uses"]), s["uses"]


def test_build_job_builds_book_slides_pdf_and_colab_in_order(wf):
    names = [uses(s) for s in steps(wf, "build")]
    assert names[:2] == ["actions/checkout", "actions/setup-python"]
    text = runs(wf, "build")
    targets = [m.group(1) for m in re.finditer(r"^make (\w+)$", text, re.M)]
    assert targets == ["book", "slides", "print", "colab"]
    # the browser the printout needs is provided at the path the Makefile and make_print.py use
    assert "/usr/bin/chromium" in text


def test_outputs_are_checked_at_the_agreed_paths(wf):
    text = runs(wf, "build")
    for path in ["_build/html/slides/*.slides.html", "_build/html/ssmbook.pdf", "_build/html/404.html",
                 "_build/html/sitemap.xml", "_build/colab/*.ipynb", "_build/teacher"]:
        assert path in text, f"the workflow does not check {path}"


def test_site_is_deployed_through_pages_actions(wf):
    build = [uses(s) for s in steps(wf, "build")]
    assert build.index("actions/configure-pages") < build.index("actions/upload-pages-artifact")
    (upload,) = step_using(wf, "build", "actions/upload-pages-artifact")
    assert upload["with"]["path"] == "_build/html"
    deploy = wf["jobs"]["deploy"]
    assert deploy["needs"] == "build"
    assert deploy["environment"]["name"] == "github-pages"
    (dep,) = step_using(wf, "deploy", "actions/deploy-pages")
    assert dep["id"] == "deployment"
    assert deploy["environment"]["url"] == "${{ steps.deployment.outputs.page_url }}"


def test_teacher_edition_is_an_artifact_not_part_of_the_site(wf):
    (art,) = step_using(wf, "build", "actions/upload-artifact")
    assert art["with"]["path"] == "_build/teacher"
    assert art["with"]["if-no-files-found"] == "error"
    (site,) = step_using(wf, "build", "actions/upload-pages-artifact")
    assert not art["with"]["path"].startswith(site["with"]["path"])
    assert "find _build/html -path '*teacher*'" in runs(wf, "build")


def test_colab_notebooks_go_to_the_colab_branch(wf):
    (pub,) = step_using(wf, "build", "peaceiris/actions-gh-pages")
    assert pub["with"]["publish_branch"] == "colab"
    assert pub["with"]["publish_dir"] == "_build/colab"
    assert pub["with"]["github_token"] == "${{ secrets.GITHUB_TOKEN }}"
    assert pub["if"] == "github.ref == 'refs/heads/main'"


def test_make_targets_exist():
    makefile = (ROOT / "Makefile").read_text()
    for target in ["book", "slides", "print"]:
        assert re.search(rf"^{target}:", makefile, re.M), f"Makefile has no target {target}"
