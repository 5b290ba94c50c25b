"""What the tests read of the repository's own files: the variables each part reads, nginx's
defaults, env files for a compose project."""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The variables the settings refuse to start without (in production, DJANGO_ADMIN_URL too).


REQUIRED_VARIABLES = (
    "DJANGO_SECRET_KEY",
    "DJANGO_ALLOWED_HOSTS",
    "POSTGRES_HOST",
    "POSTGRES_DB",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "REDIS_URL",
)


def nginx_resolve_seconds() -> int:
    """Seconds after which nginx uses the replicas that run now, and no longer the ones that
    stopped: its re-resolution period (`valid=`, nginx/templates, the owner) and one more."""
    template = (ROOT / "nginx" / "templates" / "default.conf.template").read_text()
    match = re.search(r"^resolver \S+ valid=(\d+)s", template, re.MULTILINE)
    assert match, "nginx/templates/default.conf.template sets no resolver valid="
    return int(match.group(1)) + 1


NGINX_RESOLVE_SECONDS = nginx_resolve_seconds()


def write_env_file(path: Path, overrides: dict[str, str]) -> None:
    """An env file for a compose project: .env.example with `overrides`."""
    lines = [
        line for line in (ROOT / ".env.example").read_text().splitlines() if line.split("=", 1)[0] not in overrides
    ]
    path.write_text("\n".join([*lines, *(f"{key}={value}" for key, value in overrides.items())]) + "\n")


def environment_for(env_file: Path) -> dict[str, str]:
    """Compose prefers the shell's variables to the env file's: drop the ones the file
    sets and the app tests' (tests/test.env), so a stack runs on exactly that file."""
    defined = {
        line.split("=", 1)[0]
        for path in (env_file, ROOT / "tests" / "test.env")
        for line in path.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    return {key: value for key, value in os.environ.items() if key not in defined}


def variables_read_by_app_code() -> set[str]:
    """Names passed to mainkode_example.env's readers and gunicorn.conf.py's."""
    sources = [*sorted((ROOT / "app").rglob("*.py")), ROOT / "gunicorn.conf.py"]
    pattern = re.compile(r"\b(?:env\.\w+|_env_int|_env)\(\s*\"([A-Z][A-Z0-9_]+)\"")
    return {name for source in sources for name in pattern.findall(source.read_text())}


def secrets_read_by_app_code() -> set[str]:
    """Names passed to env.secret: each may come as NAME_FILE too."""
    source = (ROOT / "app" / "mainkode_example" / "settings.py").read_text()
    return set(re.findall(r"\benv\.secret\(\s*\"([A-Z][A-Z0-9_]+)\"", source))


def variables_read_by_nginx() -> set[str]:
    templates = sorted((ROOT / "nginx" / "templates").glob("*.template"))
    return {name for template in templates for name in re.findall(r"\$\{([A-Z][A-Z0-9_]+)\}", template.read_text())}


def nginx_defaults() -> dict[str, str]:
    return dict(re.findall(r"^default (\w+) (\S+)$", (ROOT / "nginx" / "defaults.envsh").read_text(), re.MULTILINE))


def nginx_derived() -> set[str]:
    """Variables nginx/defaults.envsh computes from others (e.g. the server names): its
    top-level assignments."""
    return set(re.findall(r"^([A-Z][A-Z0-9_]+)=", (ROOT / "nginx" / "defaults.envsh").read_text(), re.MULTILINE))


def variables_nginx_derives_from() -> set[str]:
    lines = (ROOT / "nginx" / "defaults.envsh").read_text().splitlines()
    script = "\n".join(line for line in lines if not line.lstrip().startswith("#"))
    return set(re.findall(r"\$\{?([A-Z][A-Z0-9_]+)", script)) - nginx_derived() - set(nginx_defaults())


def gunicorn_default(name: str) -> int:
    """The default gunicorn.conf.py gives the knob `name` (its owner)."""
    match = re.search(rf'env\.integer\("{name}", (\d+)', (ROOT / "gunicorn.conf.py").read_text())
    assert match, f"gunicorn.conf.py no longer reads {name}"
    return int(match.group(1))
