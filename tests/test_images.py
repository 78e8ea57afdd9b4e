"""Component images: buildah build + push to a real registry, checked by skopeo; Dagger chains offline."""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import tarfile
from pathlib import Path

import pytest

import dagger
from dagger import dag
from faas_deployment.core import names
from faas_deployment.core.errors import UserError
from faas_deployment.core.secrets import SecretValue
from faas_deployment.images import buildah, images, images_dagger
from faas_deployment.images.images import BuildOptions
from faas_deployment.registry.credentials import RegistryCredentials

DOCKERFILE = """\
FROM scratch AS base
ARG GREETING=unset
COPY hello.txt /hello.txt
LABEL greeting=$GREETING

FROM base AS final
COPY version.txt /version.txt
"""

SOURCE_WITH_TOKEN = "https://deploy:glpat-not-a-real-token@gitlab.example.org/eo4eu-faas/faas-controller.git"
SOURCE_CLEAN = "https://gitlab.example.org/eo4eu-faas/faas-controller.git"


def git(cwd: Path, *args: str) -> str:
    env = {
        "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org",
        "GIT_AUTHOR_DATE": "2024-05-01T12:00:00Z", "GIT_COMMITTER_DATE": "2024-05-01T12:00:00Z",
        "PATH": "/usr/bin:/bin",
    }
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def component_source(tmp_path: Path) -> Path:
    """A component's source repository: a Dockerfile at the root, one commit, an origin remote."""
    src = tmp_path / "faas-controller"
    src.mkdir()
    (src / "Dockerfile").write_text(DOCKERFILE)
    (src / "hello.txt").write_text("hello from the controller\n")
    (src / "version.txt").write_text("1\n")
    git(src, "init", "-q", "-b", "main")
    git(src, "add", ".")
    git(src, "commit", "-q", "-m", "controller source")
    git(src, "remote", "add", "origin", SOURCE_WITH_TOKEN)
    return src


def skopeo_inspect(ref: str, registry) -> dict:
    """Independent client: skopeo reads the manifest and config from the registry."""
    done = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", "--creds", f"{registry.username}:{registry.password}", f"docker://{ref}"],
        check=True, capture_output=True, text=True,
    )
    return json.loads(done.stdout)


def skopeo_raw_manifest_digest(ref: str, registry) -> str:
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", "--creds", f"{registry.username}:{registry.password}", f"docker://{ref}"],
        check=True, capture_output=True,
    ).stdout
    return "sha256:" + hashlib.sha256(raw).hexdigest()


# ------------------------------------------------------------------ buildah path, real registry


def test_publish_pushes_labelled_image_that_skopeo_confirms(component_source, registry, capfd):
    head = git(component_source, "rev-parse", "HEAD")
    repository = f"{registry.host}/faas/controller"
    published = buildah.publish_image(
        component_source,
        repository=repository,
        tag=head[:12],
        options=BuildOptions(build_args=("GREETING=bonjour",)),
        credentials=RegistryCredentials(registry.username, SecretValue(registry.password, "env:REGISTRY_PASSWORD")),
        plain_http=True,
    )
    out, err = capfd.readouterr()
    assert registry.password not in out + err + repr(published)

    assert published.reference == f"{repository}:{head[:12]}"
    assert published.digest.startswith("sha256:") and len(published.digest) == 71
    assert str(published) == f"pushed {repository}:{head[:12]}@{published.digest}"

    info = skopeo_inspect(published.reference, registry)
    assert info["Digest"] == published.digest
    assert skopeo_raw_manifest_digest(published.reference, registry) == published.digest
    assert info["Labels"] == {
        "greeting": "bonjour",
        "org.opencontainers.image.revision": head,
        "org.opencontainers.image.source": SOURCE_CLEAN,
        "org.opencontainers.image.version": head[:12],
    }
    assert info["Created"].startswith("2024-05-01T12:00:00")  # commit time, not the wall clock
    assert len(info["Layers"]) == 2  # base stage + final stage
    tags = subprocess.run(
        ["skopeo", "list-tags", "--tls-verify=false", "--creds", f"{registry.username}:{registry.password}",
         f"docker://{repository}"], check=True, capture_output=True, text=True,
    ).stdout
    assert json.loads(tags)["Tags"] == [head[:12]]


def test_same_commit_builds_the_same_image_and_digest(component_source, registry):
    repository = f"{registry.host}/faas/controller"
    secret = SecretValue(registry.password, "env:X")
    first = buildah.publish_image(component_source, repository=repository, tag="a1", revision="r",
                                 credentials=RegistryCredentials(registry.username, secret), plain_http=True)
    second = buildah.publish_image(component_source, repository=repository, tag="a1", revision="r",
                                  credentials=RegistryCredentials(registry.username, secret), plain_http=True)
    assert first.image_id == second.image_id
    assert first.digest == second.digest
    # The tag is immutable: the same content is found unchanged and nothing is uploaded again.
    assert (first.outcome, second.outcome) == ("pushed", "unchanged")
    assert str(second) == f"unchanged {repository}:a1@{first.digest}"


def test_a_published_tag_is_never_overwritten_with_other_content(component_source, registry):
    repository = f"{registry.host}/faas/controller"
    secret = SecretValue(registry.password, "env:X")
    first = buildah.publish_image(component_source, repository=repository, tag="1.4.2", revision="r",
                                  credentials=RegistryCredentials(registry.username, secret), plain_http=True)
    (component_source / "version.txt").write_text("2\n")
    uploads = registry.blob_uploads()
    with pytest.raises(UserError) as caught:
        buildah.publish_image(component_source, repository=repository, tag="1.4.2", revision="r",
                              credentials=RegistryCredentials(registry.username, secret), plain_http=True)
    message = str(caught.value)
    assert message.startswith(
        f"{repository}:1.4.2 is already published with other content ({first.digest}, now sha256:"
    )
    assert "publish under a new tag" in message
    assert skopeo_raw_manifest_digest(f"{repository}:1.4.2", registry) == first.digest  # still the first image
    assert registry.blob_uploads() == uploads  # refused before any upload


def test_target_stage_and_explicit_labels(component_source, registry):
    published = buildah.publish_image(
        component_source,
        repository=f"{registry.host}/faas/operator",
        tag="1.4.2",
        options=BuildOptions(target="base"),
        revision="0123abc",
        source_url="https://git.example.org/faas-operator",
        credentials=RegistryCredentials(registry.username, SecretValue(registry.password, "env:X")),
        plain_http=True,
    )
    info = skopeo_inspect(published.reference, registry)
    assert info["Labels"]["org.opencontainers.image.revision"] == "0123abc"
    assert info["Labels"]["org.opencontainers.image.source"] == "https://git.example.org/faas-operator"
    assert info["Labels"]["greeting"] == "unset"
    assert len(info["Layers"]) == 1  # the "base" stage: hello.txt only, no version.txt layer


def test_wrong_password_is_refused_without_echoing_it(component_source, registry, capfd):
    wrong = "wrong-" + registry.password
    with pytest.raises(UserError) as caught:
        buildah.publish_image(
            component_source,
            repository=f"{registry.host}/faas/controller",
            tag="abc",
            credentials=RegistryCredentials(registry.username, SecretValue(wrong, "env:X")),
            plain_http=True,
        )
    message = str(caught.value)
    # The tag check reads the registry first: the refusal comes from there, before any push.
    assert message.startswith(f"registry {registry.host}: resolving {registry.host}/faas/controller:abc: HTTP 401")
    assert "credentials refused" in message
    out, err = capfd.readouterr()
    assert wrong not in message + out + err
    assert "wrong-" not in message


def test_tls_is_the_default(component_source, registry):
    # without --plain-http the tag check speaks TLS to the plain-HTTP test registry and fails
    with pytest.raises(UserError, match=f"registry {registry.host}: TLS handshake failed: .*wrong version number "
                                        r"\(the registry speaks plain HTTP: pass --plain-http"):
        buildah.publish_image(
            component_source,
            repository=f"{registry.host}/faas/controller",
            tag="abc",
            credentials=RegistryCredentials(registry.username, SecretValue(registry.password, "env:X")),
        )


def test_build_only_writes_an_oci_archive(component_source, tmp_path):
    built = buildah.build_image(component_source, BuildOptions(build_args=("GREETING=hi",)), tag="dev",
                               out=tmp_path / "out" / "image.tar")
    assert built.image_id.startswith("sha256:")
    info = json.loads(subprocess.run(["skopeo", "inspect", f"oci-archive:{built.archive}"],
                                     check=True, capture_output=True, text=True).stdout)
    assert info["Labels"]["greeting"] == "hi"
    assert info["Labels"]["org.opencontainers.image.version"] == "dev"
    assert info["Labels"]["org.opencontainers.image.source"] == SOURCE_CLEAN  # the origin, credentials stripped


def test_missing_buildah_is_named(component_source, tmp_path, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    with pytest.raises(UserError, match=r"buildah not found on PATH.*apt-get install buildah"):
        buildah.build_image(component_source, tag="x")


@pytest.mark.parametrize(
    ("options", "match"),
    [
        (
            BuildOptions(dockerfile="missing/Dockerfile"),
            r"--dockerfile: .*missing/Dockerfile not found in the build context",
        ),
        (BuildOptions(dockerfile="../Dockerfile"), r"--dockerfile: '../Dockerfile' must be a relative path"),
        (BuildOptions(dockerfile="/etc/Dockerfile"), r"must be a relative path"),
        (BuildOptions(build_args=("NOVALUE",)), r"--build-arg: expected NAME=VALUE .*'NOVALUE' without ="),
        (BuildOptions(build_args=("1BAD=x",)), r"--build-arg: expected NAME=VALUE"),
        (BuildOptions(platform="amd64"), r"--platform: expected os/arch"),
        (BuildOptions(platform=""), r"--platform: expected os/arch"),
    ],
)
def test_bad_build_options_are_explained(component_source, options, match):
    with pytest.raises(UserError, match=match):
        buildah.build_image(component_source, options, tag="x")


def test_failing_dockerfile_reports_buildah_output(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY absent.txt /\n")
    with pytest.raises(UserError, match=r"(?s)building .*Dockerfile failed \(buildah exit status \d+\):\n.*absent.txt"):
        buildah.build_image(tmp_path, tag="x")


def test_context_must_be_a_directory(tmp_path):
    with pytest.raises(UserError, match=r"--context: .*nowhere is not a directory"):
        buildah.build_image(tmp_path / "nowhere", tag="x")


@pytest.mark.parametrize("tag", ["", ".hidden", "-x", "a:b", "a/b", "x" * 129, "tag with space", "é"])
def test_invalid_tags_are_refused(tag):
    with pytest.raises(UserError, match="is not a valid image tag"):
        names.check_image_tag(tag)


@pytest.mark.parametrize("tag", ["3f2c9e1", "1.4.2", "v1.4.2-rc.1", "_x", "A" * 128, "main_2024-05-01"])
def test_valid_tags_pass(tag):
    assert names.check_image_tag(tag) == tag


@pytest.mark.parametrize(
    "repository",
    ["faas/controller", "https://registry.example.org/faas", "registry.example.org/Faas/x",
     "registry.example.org/faas:1.0", "registry.example.org/faas@sha256:00", "registry.example.org/"],
)
def test_invalid_repositories_are_refused(repository):
    with pytest.raises(
        UserError, match=r"image_repository: .* is not an image repository: expected host\[:port\]/path"
    ):
        images.check_image_repository(repository)


def test_userinfo_is_stripped_from_source_urls():
    assert images.strip_userinfo(SOURCE_WITH_TOKEN) == SOURCE_CLEAN
    assert images.strip_userinfo("git@gitlab.example.org:eo4eu/x.git") == "git@gitlab.example.org:eo4eu/x.git"
    assert images.image_labels("t", source_url=SOURCE_WITH_TOKEN)["org.opencontainers.image.source"] == SOURCE_CLEAN


# ------------------------------------------------------------------ Dagger path, offline


def chain(obj) -> list[tuple[str, str, dict]]:
    """The selections a lazy Dagger object would send: (type, field, arguments)."""
    return [(f.type_name, f.name, dict(f.args)) for f in obj._ctx.selections]


def test_dagger_build_chain():
    context = dag.directory().with_new_file("docker/Dockerfile.prod", "FROM scratch\n")
    container = images_dagger.dagger_build(
        context,
        BuildOptions(dockerfile="docker/Dockerfile.prod", build_args=("A=1", "B=two"), target="final",
                     platform="linux/arm64"),
        labels=images.image_labels("3f2c9e1", source_url=SOURCE_WITH_TOKEN),
    )
    assert isinstance(container, dagger.Container)
    steps = chain(container)
    assert steps[0][:2] == ("Query", "directory")
    assert steps[1][:2] == ("Directory", "withNewFile")
    assert steps[2] == (
        "Directory", "dockerBuild",
        {"dockerfile": "docker/Dockerfile.prod", "platform": "linux/arm64",
         "buildArgs": [{"name": "A", "value": "1"}, {"name": "B", "value": "two"}], "target": "final"},
    )
    assert steps[3:] == [
        ("Container", "withLabel", {"name": "org.opencontainers.image.revision", "value": "3f2c9e1"}),
        ("Container", "withLabel", {"name": "org.opencontainers.image.source", "value": SOURCE_CLEAN}),
        ("Container", "withLabel", {"name": "org.opencontainers.image.version", "value": "3f2c9e1"}),
    ]


def test_dagger_build_chain_defaults_leave_arguments_out():
    steps = chain(images_dagger.dagger_build(dag.directory()))
    # Dockerfile at the root, last stage; the platform is always the clusters' unless told otherwise.
    assert steps[-1] == ("Directory", "dockerBuild", {"platform": "linux/amd64"})


def test_dagger_publish_chain_carries_auth_as_a_secret():
    secret = dag.set_secret("registry-password", "s3cret-value")
    container, address = images_dagger.dagger_publish_chain(
        images_dagger.dagger_build(dag.directory()), repository="registry.example.org/eo4eu-faas/faas-controller",
        tag="3f2c9e1", username="ci", password=secret,
    )
    assert address == "registry.example.org/eo4eu-faas/faas-controller:3f2c9e1"
    last = chain(container)[-1]
    assert last[:2] == ("Container", "withRegistryAuth")
    assert last[2]["address"] == address and last[2]["username"] == "ci"
    assert last[2]["secret"] is secret  # a Secret object, resolved to an ID by the engine, not text
    assert "s3cret-value" not in address + repr(last[2]["address"])


def test_dagger_publish_chain_without_credentials_and_refusals():
    base = images_dagger.dagger_build(dag.directory())
    container, address = images_dagger.dagger_publish_chain(base, repository="registry.example.org/x/y", tag="t")
    assert chain(container) == chain(base)
    assert address == "registry.example.org/x/y:t"
    with pytest.raises(UserError, match="not a valid image tag"):
        images_dagger.dagger_publish_chain(base, repository="registry.example.org/x/y", tag="bad tag")
    with pytest.raises(UserError, match="go together"):
        images_dagger.dagger_publish_chain(base, repository="registry.example.org/x/y", tag="t", username="ci")
    with pytest.raises(UserError, match="--platform"):
        images_dagger.dagger_build(dag.directory(), BuildOptions(platform="x86"))


# ------------------------------------------------------------------ Dagger front end, offline


def test_dagger_image_functions_have_the_contracted_signatures():
    from support import daggermod

    fns = daggermod.objects()["Component"]
    build_params = {
        "context": ("dagger.Directory", False, None), "dockerfile": ("str", True, "Dockerfile"),
        "build_args": ("list[str]", True, []), "target": ("str", True, ""), "platform": ("str", True, "linux/amd64"),
        "revision": ("str", True, ""), "source_url": ("str", True, ""),
    }
    expected = {
        "build_image": ("dagger.Container", build_params),
        "publish_image": ("str", {**build_params, "tag": ("str", False, None)}),  # credentials: with-registry
    }
    for name, (return_type, params) in expected.items():
        fn = fns[name]
        assert fn.return_type == return_type, name
        assert {p: (v.type, v.optional, v.default) for p, v in fn.params.items()} == params, name
        assert fn.doc and all(p.doc for p in fn.params.values())


def test_dagger_build_image_function_builds_its_chain_offline():
    from faas_deployment.main import FaasDeployment

    component = FaasDeployment(source=dag.directory(), template=None).env("dev").component("controller")
    context = dag.git("https://gitlab.example.org/eo4eu-faas/faas-controller.git").head().tree()
    container = component.build_image(context, dockerfile="build/Dockerfile", build_args=["VERSION=1.4.2"],
                                      target="runtime", platform="linux/amd64", revision="3f2c9e1")
    steps = chain(container)
    assert [s[1] for s in steps] == ["git", "head", "tree", "dockerBuild", "withLabel"]
    assert steps[0][2] == {"url": "https://gitlab.example.org/eo4eu-faas/faas-controller.git"}
    assert steps[3][2] == {"dockerfile": "build/Dockerfile", "platform": "linux/amd64",
                           "buildArgs": [{"name": "VERSION", "value": "1.4.2"}], "target": "runtime"}
    assert steps[4][2] == {"name": "org.opencontainers.image.revision", "value": "3f2c9e1"}


def test_dagger_build_image_bad_options_are_clean_function_errors():
    from dagger.mod._exceptions import FunctionError

    from faas_deployment.main import Component

    component = Component(source=dag.directory(), template=None, env="dev", name="controller")
    with pytest.raises(FunctionError, match="--build-arg: expected NAME=VALUE") as caught:
        component.build_image(dag.directory(), build_args=["oops"])
    assert caught.value.__cause__ is None


# ------------------------------------------------------------------ CLI, end to end


@pytest.fixture
def repo(tmp_path: Path, registry) -> Path:
    """A copy of env/ whose dev images live in the test registry."""
    from support.repo_tree import config_file, copy_repo, set_scalar

    source = copy_repo(tmp_path / "deploy")
    for component in ("operator", "controller"):
        set_scalar(config_file(source, "dev", component), "image_repository", f"{registry.host}/faas/{component}")
    return source


def run_cli(capfd, *argv: str) -> tuple[int, str, str]:
    from faas_deployment.cli import main

    code = main(list(argv))
    out, err = capfd.readouterr()
    return code, out, err


def test_cli_publish_image_then_bump_then_release_deploys_the_new_image(
    repo, component_source, registry, capfd, monkeypatch, tmp_path
):
    import helm_python
    import yaml as pyyaml

    from support.repo_tree import config_file, get_scalar

    monkeypatch.setenv("TEST_REGISTRY_PASSWORD", registry.password)
    auth = ["--username", registry.username, "--password", "env:TEST_REGISTRY_PASSWORD", "--plain-http"]
    charts = ["--registry", f"oci://{registry.host}/charts", *auth]
    sha = git(component_source, "rev-parse", "HEAD")

    # The configs name images that were never published: release refuses them, unless told not to check.
    code, out, err = run_cli(capfd, "--source", str(repo), "release", "--env", "dev", *charts)
    assert code == 1 and "does not exist: its registry answers 404" in err
    code, out, err = run_cli(capfd, "--source", str(repo), "release", "--env", "dev", *charts, "--skip-image-check")
    assert code == 0, err
    assert out.count("pushed ") == 2

    code, out, err = run_cli(capfd, "--source", str(repo), "publish-image", "--env", "dev", "--component", "controller",
                             "--context", str(component_source), "--tag", sha, "--build-arg", "GREETING=hi", *auth)
    assert code == 0, err
    assert registry.password not in out + err
    reference = f"{registry.host}/faas/controller:{sha}"
    [line] = out.splitlines()
    assert line.startswith(f"pushed {reference}@sha256:")
    info = skopeo_inspect(reference, registry)
    assert line == f"pushed {reference}@{info['Digest']}"
    assert info["Labels"]["org.opencontainers.image.revision"] == sha
    assert info["Labels"]["org.opencontainers.image.version"] == sha
    assert info["Labels"]["org.opencontainers.image.source"] == SOURCE_CLEAN
    assert "[faas-deploy] push " in err  # progress lines on stderr

    controller_cfg = config_file(repo, "dev", "controller")
    old_version, old_tag = get_scalar(controller_cfg, "chart_version"), get_scalar(controller_cfg, "image_tag")
    code, out, err = run_cli(capfd, "--source", str(repo), "bump", "--env", "dev", "--component", "controller",
                             "--image-tag", sha, "--part", "minor")
    assert code == 0, err
    new_version = get_scalar(controller_cfg, "chart_version")
    assert out.strip() == (f"bumped env/dev/controller/cookiecutter-config.yaml: chart_version {old_version} -> "
                           f"{new_version}, image_tag {old_tag} -> {sha}")
    assert get_scalar(controller_cfg, "image_tag") == sha

    # The operator's image is still absent: only its check fails; the new controller image is found.
    code, out, err = run_cli(capfd, "--source", str(repo), "release", "--env", "dev", *charts)
    assert code == 1 and "env/dev/operator/cookiecutter-config.yaml: default_context.image_tag" in err
    assert "env/dev/controller/cookiecutter-config.yaml" not in err and f"image {reference}: present" in err
    code, out, err = run_cli(capfd, "--source", str(repo), "release", "--env", "dev", *charts, "--skip-image-check")
    assert code == 0, err
    lines = sorted(out.splitlines())
    assert len(lines) == 2
    assert lines[0].startswith(f"pushed {registry.host}/charts/faas-controller:{new_version}@sha256:")
    assert lines[1].startswith("unchanged ") and "/charts/faas-operator:" in lines[1]

    client = helm_python.RegistryClient(plain_http=True, credentials_file=str(tmp_path / "helm.json"))
    client.login(registry.host, registry.username, registry.password, plain_http=True)
    assert client.tags(f"oci://{registry.host}/charts/faas-controller") == [new_version, old_version]
    client.pull(f"oci://{registry.host}/charts/faas-controller", version=new_version, destination=str(tmp_path))
    rendered = helm_python.Chart.load(str(tmp_path / f"faas-controller-{new_version}.tgz")).render(
        {}, name="faas-controller", namespace="faas")
    deployments = [d for path, text in rendered.items() if path.endswith(".yaml")
                   for d in pyyaml.safe_load_all(text) if d and d["kind"] == "Deployment"]
    assert [c["image"] for c in deployments[0]["spec"]["template"]["spec"]["containers"]] == [reference]


def test_cli_build_image_writes_an_archive(repo, component_source, capfd, tmp_path):
    out_file = tmp_path / "controller.tar"
    code, out, err = run_cli(capfd, "--source", str(repo), "build-image", "--env", "dev", "--component", "controller",
                             "--context", str(component_source), "--target", "base", "--out", str(out_file))
    assert code == 0, err
    assert out.strip().startswith("built sha256:") and out.strip().endswith(f" -> {out_file}")
    info = json.loads(subprocess.run(["skopeo", "inspect", f"oci-archive:{out_file}"],
                                     check=True, capture_output=True, text=True).stdout)
    assert info["Labels"]["org.opencontainers.image.version"] == "latest"
    assert len(info["Layers"]) == 1
    # --output json: one document of build-image's documented schema (docs/results.md)
    code, out, err = run_cli(capfd, "--source", str(repo), "--output", "json", "build-image", "--env", "dev",
                             "--component", "controller", "--context", str(component_source), "--target", "base",
                             "--out", str(out_file))
    assert code == 0, err
    built = json.loads(out)
    assert not [e.message for e in _schema("build-image").iter_errors(built)]
    assert built["archive"] == str(out_file) and built["image_id"].startswith("sha256:")


def test_cli_names_a_missing_buildah(repo, component_source, capfd, monkeypatch, tmp_path, registry):
    monkeypatch.setenv("TEST_REGISTRY_PASSWORD", registry.password)
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    code, out, err = run_cli(
        capfd,
        "--source",
        str(repo),
        "publish-image",
        "--env",
        "dev",
        "--component",
        "controller",
        "--context",
        str(component_source),
        "--tag",
        "abc",
        "--username",
        registry.username,
        "--password",
        "env:TEST_REGISTRY_PASSWORD",
        "--plain-http",
    )
    assert code == 1 and out == ""
    assert err.startswith("faas-deploy: error: buildah not found on PATH") and "Traceback" not in err


def test_cli_refuses_a_bad_tag_and_a_bad_repository(repo, component_source, capfd):
    from support.repo_tree import config_file, set_scalar

    code, _, err = run_cli(capfd, "--source", str(repo), "publish-image", "--env", "dev", "--component", "controller",
                           "--context", str(component_source), "--tag", "bad:tag")
    assert code == 1 and "--tag: 'bad:tag' is not a valid image tag" in err
    set_scalar(config_file(repo, "dev", "controller"), "image_repository", "faas/controller")
    code, _, err = run_cli(capfd, "--source", str(repo), "publish-image", "--env", "dev", "--component", "controller",
                           "--context", str(component_source), "--tag", "abc")
    assert code == 1
    assert "env/dev/controller/cookiecutter-config.yaml: default_context.image_repository: " in err
    assert "'faas/controller'" in err


def test_run_steps_work_without_a_docker_engine(tmp_path):
    """A RUN step executes under buildah's chroot isolation (the OCI runtime isolation is unavailable here)."""
    context = tmp_path / "ctx"
    # a tiny base file system: the host's dash and the libraries it links to
    libs = re.findall(r"(/\S+) \(0x", subprocess.run(["ldd", "/bin/dash"], capture_output=True, text=True).stdout)
    for path in ["/bin/dash", *libs]:
        target = context / "rootfs" / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(Path(path).read_bytes())
        target.chmod(0o755)
    (context / "Dockerfile").write_text(
        'FROM scratch\nCOPY rootfs/ /\nARG WHO\nRUN ["/bin/dash", "-c", "echo built by $WHO > /out.txt"]\n'
    )
    built = buildah.build_image(context, BuildOptions(build_args=("WHO=buildah",)), tag="run", out=tmp_path / "img.tar")
    with tarfile.open(built.archive) as archive:
        def blob(digest: str) -> bytes:
            return archive.extractfile(f"blobs/sha256/{digest.split(':')[1]}").read()

        index = json.loads(archive.extractfile("index.json").read())
        manifest = json.loads(blob(index["manifests"][0]["digest"]))
        last_layer = blob(manifest["layers"][-1]["digest"])
    with tarfile.open(fileobj=io.BytesIO(last_layer)) as layer:
        assert layer.extractfile("out.txt").read() == b"built by buildah\n"


# ------------------------------------------------------------------ --plain-http and --timeout


def test_plain_http_never_turns_certificate_checks_off(component_source, tmp_path):
    import http.server
    import ssl
    import threading

    from support.tls import self_signed

    cert_file, key_file = self_signed(tmp_path)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host = f"127.0.0.1:{server.server_address[1]}"
        with pytest.raises(UserError) as caught:
            buildah.publish_image(component_source, repository=f"{host}/faas/controller", tag="abc", plain_http=True)
    finally:
        server.shutdown()
        server.server_close()
    message = str(caught.value)
    assert message.startswith(f"--plain-http: {host} answers over TLS, with a certificate that does not verify")
    assert "never turns certificate checks off" in message


def test_publish_image_ends_within_its_deadline(repo, component_source, capfd):
    import time

    started = time.monotonic()
    code, _, err = run_cli(capfd, "--source", str(repo), "publish-image", "--env", "dev", "--component", "controller",
                           "--context", str(component_source), "--tag", "abc", "--plain-http", "--timeout", "0.3")
    elapsed = time.monotonic() - started
    assert code == 1 and "no answer within the overall deadline of 0.3 s (raise --timeout" in err, err
    assert elapsed < 0.3 + 2
    assert "Traceback" not in err


# ------------------------------------------------------------------ one rule per default


def test_image_labels_one_default_for_every_engine(component_source):
    head = git(component_source, "rev-parse", "HEAD")
    # CLI: the build context is a local git work tree.
    assert images.image_labels("1.4.2", context=component_source) == {
        "org.opencontainers.image.revision": head,
        "org.opencontainers.image.source": SOURCE_CLEAN,
        "org.opencontainers.image.version": "1.4.2",
    }
    # Dagger (no local files) or a context outside git: the tag is the revision.
    assert images.image_labels("1.4.2") == images.image_labels("1.4.2", context=component_source.parent / "absent") == {
        "org.opencontainers.image.revision": "1.4.2", "org.opencontainers.image.version": "1.4.2",
    }
    # Explicit values win everywhere; unknown values are left out.
    assert images.image_labels("t", revision="r", source_url="https://x/y", context=component_source) == {
        "org.opencontainers.image.revision": "r", "org.opencontainers.image.source": "https://x/y",
        "org.opencontainers.image.version": "t",
    }
    assert images.image_labels("") == {}


@pytest.mark.parametrize("value", ["-5", "1.5", "", " 1", "١٢", "9" * 13])
def test_source_date_epoch_one_reader_refuses_what_images_and_charts_once_read_apart(value, monkeypatch, tmp_path):
    """Charts used to clamp -5 to 0 and images to refuse it: one reader now, one answer."""
    from faas_deployment.core import packaging

    monkeypatch.setenv("SOURCE_DATE_EPOCH", value)
    for read in (packaging.fixed_mtime, lambda: buildah.build_timestamp(tmp_path)):
        with pytest.raises(UserError, match=r"^SOURCE_DATE_EPOCH: expected a non-negative integer"):
            read()


def test_source_date_epoch_set_and_unset(monkeypatch, tmp_path, component_source):
    from faas_deployment.core import packaging

    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert packaging.fixed_mtime() == buildah.build_timestamp(tmp_path) == 1700000000
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    assert packaging.fixed_mtime() == 0
    assert buildah.build_timestamp(tmp_path) == 0  # no git: 0
    assert buildah.build_timestamp(component_source) == 1714564800  # the commit time, 2024-05-01T12:00:00Z


def _schema(verb: str):
    from jsonschema import Draft202012Validator

    return Draft202012Validator(json.loads((Path(__file__).resolve().parents[1] / "docs" / "schemas" / f"{verb}.json")
                                           .read_text()))
