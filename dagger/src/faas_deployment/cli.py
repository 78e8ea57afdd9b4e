"""``faas-deploy``: the pipeline's verbs for machines without a Dagger engine.

Same verbs and flags as the Dagger module (docs/design.md), each a call through
the one door, :class:`faas_deployment.door.Workspace`; this module only
translates flags. Results go to standard output (``--output json``: as JSON),
progress lines to standard error. Exit codes: 0 success, 1 a problem the user can
fix (printed without a traceback), 2 bad command line, 130 interrupted (Ctrl-C or
SIGTERM), 141 the reader of standard output went away (``| head -1``); ``deploy``
and ``wait`` add 3 a failed rollout, 4 superseded, 5 timeout (``rollout_outcome.EXIT_CODES``).

Global flags (``--source``, ``--template``, ``--output``) are accepted before or
after the verb. Start-up stays light: a verb's flags, and the modules behind their
defaults, are loaded only when that verb is on the command line, so ``--help``
imports neither the Helm engine nor an HTTP client.
"""

from __future__ import annotations

import argparse
import functools
import os
import signal
import sys
import threading

from . import cli_flags as flags

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from pathlib import Path
    from typing import Any

    from . import door

PROG = "faas-deploy"


class _Door:
    """The door package, imported on first use: ``faas-deploy --help`` needs none of it."""

    def __getattr__(self, name: str):
        from . import door

        return getattr(door, name)


if not TYPE_CHECKING:  # type checkers see the package itself
    door = _Door()


#: The command line's other flag values (flag -> value), set once parsed: a secret found inside one is refused.
_given: dict[str, object] = {}


def _resolve(value: str, flag: str):
    from .core.secrets import refuse_inside, resolve_secret

    secret = resolve_secret(value, flag=flag)
    refuse_inside(secret, flag, {k: v for k, v in _given.items() if k != flag and v != value})
    return secret


def _secret(value: str | None, flag: str):
    """``env:NAME``/``file:PATH``, read when the door needs the value (:func:`door.reveal`).

    Once read, the value must not appear inside any other flag's value
    (:func:`secrets.refuse_inside`).
    """
    # An empty flag (``--password ""``) is given, not absent: resolve_secret refuses it by name.
    return functools.partial(_resolve, value, flag) if value is not None else None


def _registry(args: argparse.Namespace, root: str | None = None) -> door.Registry:
    """The registry flags of ``args``; ``root``: the location when the verb names it otherwise (``--repository``)."""
    return door.Registry(root or getattr(args, "registry", None), args.username or None,
                             _secret(args.password, "--password"), args.plain_http, getattr(args, "timeout", None),
                             args.ca_file, getattr(args, "immutable_tags", False))


def _merge_request(args: argparse.Namespace) -> door.promotion.MergeRequestOptions | None:
    if not args.merge_request:
        return None
    return door.promotion.MergeRequestOptions(
        args.gitlab_url,
        args.gitlab_project,
        _secret(args.gitlab_token, "--gitlab-token"),
        target_branch=args.target_branch,
        remote=args.remote,
        labels=tuple(args.label),
        author=args.author,
        pipeline_url=args.pipeline_url,
    )


def _path(value: str | None) -> Path | None:
    """``value`` as a path (``pathlib`` imported when a verb runs); ``None`` when not given."""
    from pathlib import Path

    return Path(value) if value else None


def _given_path(value: str, flag: str) -> Path:
    """A required path flag's ``value`` as a path; an empty one is refused."""
    from pathlib import Path

    from .core.errors import UserError

    if not value:
        raise UserError(f"{flag}: empty; give a path")
    return Path(value)


def _options(args: argparse.Namespace):
    return door.images.build_options(args.dockerfile, args.build_arg, args.target, args.platform)


# --------------------------------------------------------------------------- the verbs


class Verb:
    """One verb: its help, its own flags, the door call; ``env``/``component``: the standard flags it takes."""

    __slots__ = ("help", "run", "flags", "env", "env_required", "component")

    def __init__(self, help: str, run: Callable[[door.Workspace, argparse.Namespace], door.Result],
                 flags: Callable[[argparse.ArgumentParser], None] = lambda parser: None, *, env: bool = True,
                 env_required: bool = True, component: bool = False):
        self.help, self.run, self.flags = help, run, flags
        self.env, self.env_required, self.component = env, env_required, component


def _deploy(ws: door.Workspace, a: argparse.Namespace) -> door.Result:
    return door.deploy.deploy(
        ws, a.env,
        component=a.component,
        registry=_registry(a),
        receiver_token=_secret(a.receiver_token, "--receiver-token"),
        trigger_api=a.trigger_api,
        kubeconfig=_secret(a.kubeconfig, "--kubeconfig"),
        kube_context=a.kube_context,
        timeout=a.timeout,
        receiver_url=a.receiver_url,
        upload_token=_secret(a.admin_token, "--admin-token"),
        admin_url=a.admin_url,
        prerelease=a.prerelease,
    )


def _plan(ws: door.Workspace, a: argparse.Namespace) -> door.Result:
    return door.plan.plan(ws, base=a.base, head=a.head, output=a.output, pipeline=_path(a.child_pipeline_file),
                          ref=a.ref, default_branch=a.default_branch, merge_request=a.merge_request,
                          pipeline_iid=a.pipeline_iid, branch_envs=a.branch_env or ())


VERBS: dict[str, Verb] = {
    "check": Verb("validate configs, lint and package every chart, check the dynamic/ templates; "
                  "refuse a changed chart whose version was not bumped (against --registry, else the local repository)",
                  lambda ws, a: door.check.check(ws, a.env, _registry(a),
                                                 base=a.base), flags.check_flags, env_required=False),
    "config": Verb("print the validated, resolved values as YAML",
                   lambda ws, a: door.charts.config(ws, a.env, a.component), component=True),
    "chart": Verb("render the chart into --out",
                  lambda ws, a: door.charts.chart(ws, a.env, a.component, _given_path(a.out, "--out")),
                  flags.out_flag(), component=True),
    "objects": Verb("print the chart's Kubernetes objects as helm template renders them",
                     lambda ws, a: door.charts.rendered_objects(ws, a.env, a.component), component=True),
    "package": Verb("package the chart reproducibly into --out",
                    lambda ws, a: door.charts.package(ws, a.env, a.component, _given_path(a.out, "--out")),
                    flags.out_flag(), component=True),
    "publish": Verb("publish one component's chart",
                    lambda ws, a: door.charts.publish(ws, a.env, a.component, _registry(a), prerelease=a.prerelease),
                    flags.publish_flags, component=True),
    "release": Verb("publish every component's chart of an environment concurrently",
                    lambda ws, a: door.charts.release(ws, a.env, _registry(a),
                                                      check_images=not a.skip_image_check), flags.release_flags),
    "bundle": Verb("validate the dynamic/ templates of env/<env>/operator/ and write their reproducible zip, "
                   "the bundle, to --out",
                   lambda ws, a: door.bundle.bundle(ws, a.env, _path(a.out)), flags.out_flag(metavar="FILE")),
    "upload-bundle": Verb(
        "bundle the dynamic/ templates (kept at --out), wait for the operator admin API to be ready, upload the "
        "bundle once",
        lambda ws, a: door.bundle.upload_bundle(ws, a.env, _secret(a.admin_token, "--admin-token"),
                                                admin_url=a.admin_url, ready_path=a.ready_path,
                                                upload_path=a.upload_path, timeout=a.timeout, out=_path(a.out)),
        flags.upload_flags),
    "build-image": Verb("build the component's image with buildah (no Docker engine needed)",
                        lambda ws, a: door.images.build_image(ws, a.env, a.component, _given_path(a.context,
                                                                                                  "--context"),
                                                              options=_options(a), tag=a.tag, revision=a.revision,
                                                              source_url=a.source_url, out=_path(a.out)),
                        flags.build_flags, component=True),
    "publish-image": Verb(
        "build the component's image with buildah, push it to its image_repository:--tag, print REF@DIGEST",
        lambda ws, a: door.images.publish_image(ws, a.env, a.component, _given_path(a.context, "--context"), tag=a.tag,
                                                options=_options(a),
                                                username=a.username, password=_secret(a.password, "--password"),
                                                plain_http=a.plain_http, timeout=a.timeout, revision=a.revision,
                                                source_url=a.source_url, ca_file=a.ca_file),
        flags.publish_image_flags, component=True),
    "bump": Verb("set image_tag and raise chart_version in the component's config, in place",
                 lambda ws, a: door.promotion.bump(ws, a.env, a.component, image_tag=a.image_tag, part=a.part,
                                                   merge_request=_merge_request(a), timeout=a.timeout),
                 flags.bump_flags, component=True),
    "promote": Verb("carry what runs in --from to --to's config: promoted values, chart_version raised; in place, "
                    "or as a merge request",
                    lambda ws, a: door.promotion.promote(ws, a.from_env, a.to_env, component=a.component,
                                                         all_components=a.all,
                                                         source_status=_path(a.source_status),
                                                         kubeconfig=_secret(a.kubeconfig, "--kubeconfig"),
                                                         kube_context=a.kube_context, merge_request=_merge_request(a),
                                                         allow_prerelease=a.allow_prerelease, timeout=a.timeout),
                    flags.promote_flags, env=False),
    "publish-artifact": Verb("push each component's rendered objects (or --objects) as a Flux OCI artifact "
                             "tagged app-<component> and app-<component>-<chart_version>",
                             lambda ws, a: door.artifacts.publish_artifact(
                                 ws, a.env, _registry(a, a.repository), a.component,
                                 objects_dir=p.resolve() if (p := _path(a.objects)) else None,
                                 revision=a.revision, source_url=a.source_url),
                             flags.publish_artifact_flags),
    "retire-artifact": Verb("delete app-<component> so Flux uninstalls a component removed from the repository",
                            lambda ws, a: door.artifacts.retire_artifact(ws, a.env, a.component,
                                                                         _registry(a, a.repository)),
                            flags.retire_flags),
    "artifact-objects": Verb(
        "write the Flux Operator objects (ResourceSetInputProvider, ResourceSet, Receiver) into --out",
        lambda ws, a: door.artifacts.artifact_objects(ws, a.env, a.repository, _given_path(a.out, "--out"),
                                                      name=a.name, namespace=a.namespace,
                                                      target_namespace=a.target_namespace,
                                                      registry_secret=a.registry_secret,
                                                      receiver_secret=a.receiver_secret, plain_http=a.plain_http),
        flags.objects_flags),
    "plan": Verb("what a change does to every environment x component (install, upgrade, refused, retire, upload, "
                 "unchanged); never writes to a registry", _plan, flags.plan_flags, env=False),
    "flux": Verb("write the environment's Flux objects (OCIRepository, HelmRelease, Receiver) into --out",
                 lambda ws, a: door.deploy.flux(ws, a.env, _given_path(a.out, "--out"),
                                                registry_secret=a.registry_secret,
                                                plain_http=a.plain_http),
                 flags.flux_flags),
    "deploy": Verb("publish, trigger Flux through the Receiver, wait until each HelmRelease runs the pushed version "
                   "(exit 3 failed, 4 superseded, 5 timeout)", _deploy, flags.deploy_flags),
    "wait": Verb("wait until each HelmRelease runs the version the configs describe, or with --artifact the "
                 "Kustomization app-<component> applied that digest (exit 3 failed, 4 superseded, 5 timeout)",
                 lambda ws, a: door.deploy.wait(ws, a.env, component=a.component, kubeconfig=_secret(a.kubeconfig,
                                                                                                     "--kubeconfig"),
                                                kube_context=a.kube_context, timeout=a.timeout, artifact=a.artifact,
                                                artifact_namespace=a.artifact_namespace),
                 flags.wait_flags),
}

#: Older verb names, still accepted so existing scripts keep working: old name -> verb. Hidden from the
#: verb list; each one's own ``--help`` says which verb it is (docs/glossary.md, "Words that misled").
ALIASES: dict[str, str] = {"manifests": "bundle", "upload-manifests": "upload-bundle"}


# --------------------------------------------------------------------------- parser


class _Version(argparse.Action):
    """``--version``: the installed package's version, read only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object):
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0,
                         help="print the version and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        from importlib.metadata import version

        print(f"{PROG} {version('faas_deployment')}", flush=True)  # a result: standard output
        parser.exit()


def _global_flags(parser: argparse.ArgumentParser, *, after_verb: bool) -> None:
    """``--source``, ``--template``, ``--output``; after the verb they only override what was given before it."""
    keep: dict[str, Any] = {"default": argparse.SUPPRESS} if after_verb else {}
    parser.add_argument("--source", help="repository root holding env/ (default: .)", **(keep or {"default": "."}))
    parser.add_argument("--template", help="a cookiecutter template directory replacing the embedded chart template",
                        **(keep or {"default": None}))
    parser.add_argument("--output", "--format", dest="output", metavar="text|json",
                        help="results as text or as one JSON document (default: text); --format is the same flag, "
                             "the name the Dagger functions use (dagger call owns --output)",
                        **(keep or {"default": "text"}))


def build_parser(verbs: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The command line parser; only the verbs in ``verbs`` (default: all) get their own flags."""
    chosen = set(VERBS) if verbs is None else set(verbs)
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    parser.add_argument("--version", action=_Version)
    _global_flags(parser, after_verb=False)
    subparsers = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name, verb in [*VERBS.items(), *((old, VERBS[new]) for old, new in ALIASES.items())]:
        if name in ALIASES:  # a parser of its own without help=: argparse lists only the verbs given a help
            sub = subparsers.add_parser(name, description=f"older name of {ALIASES[name]}: {verb.help}")
        else:
            sub = subparsers.add_parser(name, help=verb.help, description=verb.help)
        sub.set_defaults(verb_spec=verb)
        if name not in chosen:
            continue
        _global_flags(sub, after_verb=True)
        if verb.env:
            sub.add_argument("--env", required=verb.env_required, help="environment (env/<env>/)")
        if verb.component:
            sub.add_argument("--component", required=True, help="component (env/<env>/<component>/)")
        verb.flags(sub)
    return parser


def _interrupt_on_term(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds like Ctrl-C: temporary directories are removed on the way out


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (see module doc).

    SIGTERM (a CI job cancelled, ``kill``) is handled like Ctrl-C: the run stops,
    the publish leases it holds are given back (:func:`door.interrupted`), its
    temporary directories are removed, one line says so, and the exit code is 130.
    """
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:
        try:
            door.interrupted()
        except KeyboardInterrupt:
            pass  # a second interrupt: leave what is left to the leases' lifetime
        print(f"{PROG}: interrupted", file=sys.stderr, flush=True)
        _forget_unhandled_interrupt()
        return 130
    except BrokenPipeError:
        return _reader_gone()


def _forget_unhandled_interrupt() -> None:
    """Clear CPython's mark of an interrupt that left code run from a string, once it is handled.

    CPython marks a KeyboardInterrupt that leaves code run from a string (``exec``
    of a dataclass's generated methods during a lazy import, say) as unhandled, even
    when a caller handles it later (``Python/pythonrun.c``, ``run_eval_code_obj``);
    ``Py_RunMain`` then ends a ``python -m`` process by SIGINT (exit -2) instead of
    with 130. The same function clears the mark on entry: evaluating a constant
    string clears it.
    """
    eval("None")


def _reader_gone() -> int:
    """The reader of standard output went away (``| head -1``): end quietly, as ``head``'s writer should.

    Standard output is pointed at ``/dev/null`` so the interpreter's final flush
    finds no broken pipe (Python's ``signal`` documentation, "Note on SIGPIPE").
    The exit code is 141, 128 + SIGPIPE, what a shell reports for a writer the pipe ended.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 141


def _main(argv: list[str]) -> int:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt_on_term)
    args = build_parser([token for token in argv if token in VERBS or token in ALIASES]).parse_args(argv)
    _given.clear()
    _given.update({"--" + k.replace("_", "-"): v for k, v in vars(args).items() if isinstance(v, (str, list))})
    from .core.errors import UserError

    try:
        door.check_output(args.output)
        ws = door.Workspace.open(args.source, args.template)
        with door.run_tempdir():
            result = args.verb_spec.run(ws, args)
    except UserError as exc:
        if args.output == "json":  # one JSON object, the last line of standard error (docs/results.md)
            import json

            from .core.errors import error_document

            print(json.dumps(error_document(exc), sort_keys=False), file=sys.stderr, flush=True)
        else:
            print(f"{PROG}: error: {exc}", file=sys.stderr, flush=True)
        return 1
    if getattr(args, "report", None) and isinstance(result.data, dict) and "outcomes" in result.data:
        report = door.Result(data=result.data).render("json") + "\n"
        _given_path(args.report, "--report").write_text(report, encoding="utf-8")
    output = result.render(args.output)
    if output:
        print(output, flush=True)
    return result.exit_code


if __name__ == "__main__":
    sys.exit(main())
