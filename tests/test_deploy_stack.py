"""The deployment kit in deploy/ works as docs/deployment.md installs it.

- The environment template lists every setting with its default and refuses to start unfilled.
- The systemd units pass `systemd-analyze verify` (offline: no booted systemd is needed).
- The nginx site passes `nginx -t` inside Debian's own nginx.conf; logrotate reads its file.
- A production-like stack on this machine (PostgreSQL pass of CI): a database of its own, the
  guide's setup commands, gunicorn and the dispatcher started from the units' ExecStart with the
  template's settings (APP_ENV=production, LINE pointed at the fake platform), nginx with the site
  and a self-signed certificate in front. A resident follows, asks and registers through nginx
  over HTTPS and is answered; a notice scheduled with the CLI is multicast by the dispatcher at
  its time; the admin is refused from an address the access file does not allow.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests

from bot.config import SETTINGS, ConfigError, load_config
from bot.sandbox.fake_line import FakeLinePlatform
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
INSTALL_DIR = "/opt/linebot"  # where docs/deployment.md puts the repository
ENV_FILE = "/etc/linebot/linebot.env"
UNITS = ("linebot-web.service", "linebot-dispatcher.service")
GUNICORN_VARIABLES = ("GUNICORN_BIND", "GUNICORN_WORKERS", "GUNICORN_THREADS")
SITE = DEPLOY / "nginx-linebot.conf"
ADMIN_ACCESS = "/etc/nginx/linebot-admin-access.conf"
PASSWORD = "deploy-stack-password-1234"
JST = ZoneInfo("Asia/Tokyo")


# --- reading the kit ------------------------------------------------------------------------------


def service_section(name: str) -> dict[str, list[str]]:
    """`Key` -> values of a unit's [Service] section, in order."""
    section = ""
    values: dict[str, list[str]] = {}
    for line in (DEPLOY / name).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]":
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def env_template() -> tuple[dict[str, str], dict[str, str]]:
    """deploy/linebot.env.example: (settings it sets, settings it shows commented out with their default)."""
    active: dict[str, str] = {}
    commented: dict[str, str] = {}
    for line in (DEPLOY / "linebot.env.example").read_text(encoding="utf-8").splitlines():
        if match := re.fullmatch(r"([A-Z][A-Z0-9_]*)=(.*)", line):
            active[match.group(1)] = match.group(2)
        elif match := re.fullmatch(r"# ([A-Z][A-Z0-9_]*)=(\S*)", line):
            commented[match.group(1)] = match.group(2)
    return active, commented


def production_environment(overrides: dict[str, str]) -> dict[str, str]:
    """What systemd gives the units: Environment= first, then the EnvironmentFile (the template)."""
    environment = {k: v for k, v in os.environ.items() if k not in SETTINGS and k not in GUNICORN_VARIABLES}
    for assignment in service_section("linebot-web.service")["Environment"]:
        name, _, value = assignment.partition("=")
        environment[name] = value
    active, _commented = env_template()
    environment.update({k: v for k, v in active.items() if v != ""})
    environment.update(overrides)
    return environment


def exec_start(name: str) -> list[str]:
    """The unit's ExecStart as argv for this checkout (INSTALL_DIR is the repository)."""
    (command,) = service_section(name)["ExecStart"]
    return [word.replace(INSTALL_DIR, str(ROOT)) for word in command.split()]


def render(text: str, replacements: dict[str, str]) -> str:
    """Replace each string; every one must occur (the kit changed: update the test with it)."""
    for old, new in replacements.items():
        assert old in text, f"{old!r} is no longer in the file"
        text = text.replace(old, new)
    return text


def need(*programs: str) -> None:
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (Debian packages; .ci/run installs them)")


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 made as an operator would test one: openssl req -x509."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-keyout", str(key), "-out", str(cert),
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


def nginx_site(directory: Path, cert: Path, key: Path, access: str, http_port: int = 80, https_port: int = 443,
               upstream_port: int = 8080) -> Path:
    """The site with this machine's paths and ports, its admin access file beside it."""
    (directory / "logs").mkdir(exist_ok=True)
    (directory / "acme").mkdir(exist_ok=True)
    access_file = directory / "admin-access.conf"
    access_file.write_text(access, encoding="utf-8")
    site = render(SITE.read_text(encoding="utf-8"), {
        "server 127.0.0.1:8080;": f"server 127.0.0.1:{upstream_port};",
        "listen 80;": f"listen 127.0.0.1:{http_port};",
        "listen [::]:80;": "",
        "listen 443 ssl http2;": f"listen 127.0.0.1:{https_port} ssl http2;",
        "listen [::]:443 ssl http2;": "",
        "/etc/letsencrypt/live/linebot.example.jp/fullchain.pem": str(cert),
        "/etc/letsencrypt/live/linebot.example.jp/privkey.pem": str(key),
        "/var/log/linebot/": f"{directory}/logs/",
        ADMIN_ACCESS: str(access_file),
        "/var/www/html": str(directory / "acme"),
        INSTALL_DIR: str(ROOT),
    })
    path = directory / "linebot.conf"
    path.write_text(site, encoding="utf-8")
    return path


def nginx_worker_user() -> str:
    """As root, workers run as nobody when they can read the checkout's static files (else root)."""
    if os.geteuid() != 0:
        return ""  # an unprivileged master keeps its own user
    path = ROOT / "bot" / "static"
    readable = all(p.stat().st_mode & 0o001 for p in (path, *path.parents))
    return "user nobody nogroup;\n" if readable else "user root;\n"


def nginx_main_config(directory: Path, site: Path) -> Path:
    """A main nginx.conf of the test's own: its pid, logs and temporary files in `directory`."""
    for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (directory / "temp" / name).mkdir(parents=True, exist_ok=True)
    config = directory / "nginx.conf"
    config.write_text(
        nginx_worker_user()
        + f"worker_processes 1;\npid {directory}/nginx.pid;\nerror_log {directory}/logs/error.log warn;\ndaemon off;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        "    include /etc/nginx/mime.types;\n"
        "    default_type application/octet-stream;\n"
        f"    access_log {directory}/logs/access.log;\n"
        f"    client_body_temp_path {directory}/temp/body;\n"
        f"    proxy_temp_path {directory}/temp/proxy;\n"
        f"    fastcgi_temp_path {directory}/temp/fastcgi;\n"
        f"    uwsgi_temp_path {directory}/temp/uwsgi;\n"
        f"    scgi_temp_path {directory}/temp/scgi;\n"
        f"    include {site};\n"
        "}\n",
        encoding="utf-8",
    )
    return config


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A temporary directory nginx's workers (nobody) can enter, removed afterwards."""
    path = Path(tempfile.mkdtemp(prefix="linebot-deploy-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# --- the kit on its own -------------------------------------------------------------------------


def test_the_environment_template_lists_every_setting_with_its_default() -> None:
    active, commented = env_template()
    assert not set(active) & set(commented)
    shown = set(active) | set(commented)
    assert sorted(set(SETTINGS) - shown) == [], "settings of bot/config.py missing in deploy/linebot.env.example"
    assert sorted(shown - set(SETTINGS) - set(GUNICORN_VARIABLES)) == [], "no such settings"
    for name, value in commented.items():
        if name in SETTINGS:
            kind, default, _ = SETTINGS[name]
            if default is None or value == "":
                assert value == "" and default is None, f"# {name}={value}: bot/config.py's default is {default!r}"
            elif kind in (int, float):
                assert float(value) == float(default), f"# {name}={value}: bot/config.py's default is {default!r}"
            else:
                assert value == str(default), f"# {name}={value}: bot/config.py's default is {default!r}"
    assert active["APP_ENV"] == "production" and active["TRUSTED_PROXIES"] == "1"
    assert active["DATABASE_URL"].startswith("postgresql+psycopg://")
    gunicorn = (ROOT / "gunicorn.conf.py").read_text(encoding="utf-8")
    for name in GUNICORN_VARIABLES:  # set, not left empty: gunicorn.conf.py casts them without a fallback
        assert active.get(name) and f'os.environ.get("{name}", "{active[name]}")' in gunicorn, name
    assert f"server {active['GUNICORN_BIND']};" in SITE.read_text(encoding="utf-8")
    # systemd takes everything after `=` as the value: a comment after it would become part of it.
    assert not [v for v in active.values() if "#" in v]

    # Copied but not filled in, it refuses to start and names what is missing.
    with pytest.raises(ConfigError) as refused:
        load_config(active)
    assert "SECRET_KEY, LINE_CHANNEL_SECRET, LINE_CHANNEL_ACCESS_TOKEN" in str(refused.value)
    filled = {**active, "SECRET_KEY": secrets.token_hex(32), "LINE_CHANNEL_SECRET": "0" * 32,
              "LINE_CHANNEL_ACCESS_TOKEN": "token"}
    config = load_config(filled)
    assert config["APP_ENV"] == "production" and config["SESSION_COOKIE_SECURE"] and config["ADMIN_REQUIRE_2FA"]
    assert config["SIMULATOR_ENABLED"] is False and config["LINE_API_BASE_URL"] == "https://api.line.me"


def test_the_units_run_the_documented_commands_hardened() -> None:
    web, dispatcher = (service_section(name) for name in UNITS)
    assert web["ExecStart"] == [f"{INSTALL_DIR}/bin/python -m gunicorn -c gunicorn.conf.py wsgi:app"]
    assert dispatcher["ExecStart"] == [f"{INSTALL_DIR}/bin/flask broadcast run-scheduler"]
    for unit in (web, dispatcher):
        assert unit["User"] == ["linebot"] and unit["WorkingDirectory"] == [INSTALL_DIR]
        assert unit["Environment"] == ["APP_ENV=production"] and unit["EnvironmentFile"] == [ENV_FILE]
        assert unit["Restart"] == ["on-failure"] and unit["RestartPreventExitStatus"] == ["4"]
        for key, value in (("ProtectSystem", "strict"), ("NoNewPrivileges", "yes"), ("PrivateTmp", "yes"),
                           ("ProtectHome", "yes"), ("ReadWritePaths", f"{INSTALL_DIR}/instance")):
            assert unit[key] == [value], key


def test_the_template_copied_unfilled_stops_both_units_with_the_status_they_are_not_restarted_on() -> None:
    """Exit 4 and one Japanese line naming what is missing: RestartPreventExitStatus=4 keeps systemd from looping."""
    env = production_environment({"GUNICORN_BIND": f"127.0.0.1:{free_port()}"})
    for name in UNITS:
        (status,) = service_section(name)["RestartPreventExitStatus"]
        result = subprocess.run(exec_start(name), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == int(status), f"{name}: {result.returncode}\n{result.stderr[-2000:]}"
        assert "設定エラーのため起動できません: missing required settings: SECRET_KEY" in result.stderr, result.stderr


def test_the_units_pass_systemd_analyze_verify(workdir: Path) -> None:
    """Rendered with paths that exist here; `--man=no --generators=no` needs no booted systemd."""
    need("systemd-analyze")
    env_file = workdir / "linebot.env"
    env_file.write_text((DEPLOY / "linebot.env.example").read_text(encoding="utf-8"), encoding="utf-8")
    rendered = []
    for name in UNITS:
        text = render((DEPLOY / name).read_text(encoding="utf-8"), {ENV_FILE: str(env_file), INSTALL_DIR: str(ROOT)})
        (workdir / name).write_text(text, encoding="utf-8")
        rendered.append(str(workdir / name))
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", "--generators=no", *rendered],
                            capture_output=True, text=True, timeout=120, env={**os.environ, "SYSTEMD_LOG_LEVEL": "notice"})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    # Unknown keys and bad values are only warnings ("…, ignoring"): none may concern our units.
    ours = [line for line in output.splitlines() if "linebot-" in line]
    assert not ours, "\n".join(ours)

    broken = workdir / "broken" / "linebot-web.service"
    broken.parent.mkdir()
    broken.write_text((workdir / UNITS[0]).read_text(encoding="utf-8").replace("bin/python", "bin/no-such-program"),
                      encoding="utf-8")
    refused = subprocess.run(["systemd-analyze", "verify", "--man=no", "--generators=no", str(broken)],
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "no-such-program" in refused.stdout + refused.stderr


def test_the_nginx_site_passes_nginx_t_in_debians_nginx_conf(workdir: Path) -> None:
    need("nginx", "openssl")
    debian = Path("/etc/nginx/nginx.conf")
    if not debian.is_file() or os.geteuid() != 0:
        pytest.skip("needs Debian's /etc/nginx/nginx.conf and root (its user, pid and log paths)")
    cert, key = self_signed_certificate(workdir)
    site = nginx_site(workdir, cert, key, (DEPLOY / "nginx-admin-access.conf").read_text(encoding="utf-8"))
    main = render(debian.read_text(encoding="utf-8"), {"include /etc/nginx/sites-enabled/*;": f"include {site};"})
    (workdir / "nginx.conf").write_text(main, encoding="utf-8")
    result = subprocess.run(["nginx", "-t", "-c", str(workdir / "nginx.conf")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr and "[warn]" not in result.stderr, result.stderr


def test_logrotate_reads_the_rotation_of_the_sites_logs(workdir: Path) -> None:
    need("logrotate")
    logs = workdir / "logs"
    logs.mkdir()
    (logs / "nginx-access.log").write_text("127.0.0.1 - - GET /healthz 200\n", encoding="utf-8")
    config = workdir / "linebot"
    config.write_text(render((DEPLOY / "logrotate-linebot").read_text(encoding="utf-8"),
                             {"/var/log/linebot/": f"{logs}/"}), encoding="utf-8")
    result = subprocess.run(["logrotate", "--debug", "--state", str(workdir / "state"), str(config)],
                            capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and "error" not in output.lower(), output
    assert "nginx-access.log" in output and "90" in output


# --- the production-like stack ----------------------------------------------------------------------


@dataclass
class Stack:
    """Processes started by the test, stopped (and their logs kept for failures) in `stop`."""

    workdir: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed when the process is stopped
        process = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.processes[name] = process
        return process

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""

    def wait_for(self, name: str, ready: Any, timeout: float) -> None:
        """Poll ready() until true; fail with the process's log if it exits or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process = self.processes[name]
            if process.poll() is not None:
                pytest.fail(f"{name} exited with {process.returncode}:\n{self.log(name)[-4000:]}")
            try:
                if ready():
                    return
            except (OSError, requests.RequestException):
                pass
            time.sleep(0.2)
        pytest.fail(f"{name} not ready within {timeout:g} s:\n{self.log(name)[-4000:]}")

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        """Signal the process's group; kill it if it does not exit in time."""
        process = self.processes.pop(name)
        if process.poll() is None:
            try:
                os.killpg(process.pid, sig)
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
                return -9
            except ProcessLookupError:
                pass
        return process.wait(timeout=10)

    def stop_all(self) -> None:
        for name in reversed(list(self.processes)):
            self.stop(name)


@pytest.fixture
def stack_database(database_url: str) -> Iterator[str]:
    """A PostgreSQL database of this test's own on TEST_DATABASE_URL's server, dropped afterwards."""
    if not database_url.startswith("postgresql"):
        pytest.skip("the production-like stack runs on PostgreSQL: set TEST_DATABASE_URL=postgresql+psycopg://… "
                    "(the PostgreSQL pass of .ci/run)")
    import psycopg

    server, _, name = database_url.replace("+psycopg", "").rpartition("/")
    stack_name = f"{name}_deploy_stack"
    with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{stack_name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{stack_name}"')
    try:
        yield f"{server.replace('postgresql://', 'postgresql+psycopg://')}/{stack_name}"
    finally:
        with psycopg.connect(database_url.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{stack_name}" WITH (FORCE)')


class Resident:
    """A LINE user whose webhooks go through nginx over HTTPS, as LINE's would."""

    def __init__(self, fake: FakeLinePlatform, url: str, cert: Path, user_id: str) -> None:
        self.fake, self.url, self.cert, self.user_id = fake, url, cert, user_id

    def post(self, event: dict[str, Any]) -> requests.Response:
        body = self.fake.webhook_body([event])
        return requests.post(self.url, data=body, verify=str(self.cert), timeout=10, headers={
            "Content-Type": "application/json; charset=utf-8", "User-Agent": "LineBotWebhook/2.0",
            "X-Line-Signature": self.fake.sign(body)})

    def send(self, event: dict[str, Any], expect: int) -> list[dict[str, Any]]:
        before = len(self.fake.delivered(self.user_id))
        answer = self.post(event)
        assert answer.status_code == 200, answer.text
        return self.fake.wait_for_delivery(self.user_id, before + expect, timeout=60)[before:]

    def tap(self, message: dict[str, Any], label: str) -> dict[str, Any]:
        """Tap a quick-reply button the bot offered; the bot's one answer."""
        actions = [item["action"] for item in message.get("quickReply", {}).get("items", [])]
        found = [a for a in actions if a.get("label") == label]
        assert found, f"no button {label!r} in {[a.get('label') for a in actions]}"
        action = found[0]
        event = (self.fake.text_event(self.user_id, action["text"]) if action["type"] == "message"
                 else self.fake.postback_event(self.user_id, action["data"]))
        *_, reply = self.send(event, 1)
        return reply


def labels(message: dict[str, Any]) -> list[str]:
    return [item["action"].get("label", "") for item in message.get("quickReply", {}).get("items", [])]


def admin_request(port: int, source: str, cert: Path, path: str) -> tuple[int, str, dict[str, str]]:
    """GET through nginx over HTTPS from a chosen loopback address."""
    context = ssl.create_default_context(cafile=str(cert))
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=10, context=context, source_address=(source, 0))
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace"), {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


@pytest.mark.postgres_only
def test_a_production_like_stack_answers_through_nginx_and_sends_a_scheduled_notice(
    stack_database: str, fake_line_server: Any, fake_line: FakeLinePlatform, workdir: Path,
) -> None:
    need("nginx", "openssl")
    _fake, served = fake_line_server
    gunicorn_port, http_port, https_port = free_port(), free_port(), free_port()
    env = production_environment({
        "SECRET_KEY": secrets.token_hex(32),
        "DATABASE_URL": stack_database,
        "LINE_CHANNEL_SECRET": fake_line.channel_secret,
        "LINE_CHANNEL_ACCESS_TOKEN": "stack-access-token",
        "LINE_API_BASE_URL": served.url,
        "LINE_TIMEOUT_SECONDS": "5",
        "GUNICORN_BIND": f"127.0.0.1:{gunicorn_port}",
        "BROADCAST_POLL_SECONDS": "1",
    })
    assert env["APP_ENV"] == "production" and env["TRUSTED_PROXIES"] == "1"
    cwd = Path(service_section("linebot-web.service")["WorkingDirectory"][0].replace(INSTALL_DIR, str(ROOT)))
    flask = [str(ROOT / "bin" / "flask")]

    def run(*args: str, stdin: str = "") -> str:
        result = subprocess.run([*flask, *args], cwd=cwd, env=env, input=stdin, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, f"bin/flask {' '.join(args)}\n{result.stdout}\n{result.stderr}"
        return result.stdout

    # The guide's setup, on the new database.
    run("db", "upgrade")
    run("faq", "load")
    run("users", "create", "tanaka", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    assert "既定のメニューにしました" in run("line", "setup-richmenu")

    stack = Stack(workdir)
    try:
        stack.start("gunicorn", exec_start("linebot-web.service"), env, cwd)
        direct = f"http://127.0.0.1:{gunicorn_port}"
        stack.wait_for("gunicorn", lambda: requests.get(direct + "/healthz", timeout=2).status_code == 200, 120)
        stack.start("dispatcher", exec_start("linebot-dispatcher.service"), env, cwd)
        stack.wait_for("dispatcher", lambda: "配信プロセスを開始しました" in stack.log("dispatcher"), 120)

        cert, key = self_signed_certificate(workdir)
        # The admin only from 127.0.0.2: the test's own requests come from 127.0.0.1.
        site = nginx_site(workdir, cert, key, "allow 127.0.0.2;\ndeny all;\n", http_port, https_port, gunicorn_port)
        config = nginx_main_config(workdir, site)
        checked = subprocess.run(["nginx", "-t", "-p", str(workdir), "-c", str(config)], capture_output=True, text=True,
                                 timeout=60)
        assert checked.returncode == 0, checked.stderr
        stack.start("nginx", ["nginx", "-p", str(workdir), "-c", str(config)], env, workdir)
        https = f"https://127.0.0.1:{https_port}"
        stack.wait_for("nginx", lambda: requests.get(https + "/healthz", verify=str(cert), timeout=2).ok, 30)

        # HTTPS recognised behind the proxy (X-Forwarded-Proto, TRUSTED_PROXIES): the app sends HSTS.
        health = requests.get(https + "/healthz", verify=str(cert), timeout=10)
        assert health.json() == {"status": "ok"}
        assert health.headers["Strict-Transport-Security"] == "max-age=31536000"
        assert health.headers["Server"] == "nginx"  # server_tokens off: no version
        plain = requests.get(f"http://127.0.0.1:{http_port}/callback?x=1", allow_redirects=False, timeout=10)
        assert plain.status_code == 301 and plain.headers["Location"] == "https://127.0.0.1/callback?x=1"
        static = requests.get(https + "/static/admin.css", verify=str(cert), timeout=10)
        assert static.status_code == 200 and static.content == (ROOT / "bot" / "static" / "admin.css").read_bytes()
        assert static.headers["X-Content-Type-Options"] == "nosniff"

        # Webhooks: a forged signature is refused, an oversized body stopped by nginx.
        user = "U" + secrets.token_hex(16)
        resident = Resident(fake_line, https + "/callback", cert, user)
        forged = requests.post(https + "/callback", data=fake_line.webhook_body([fake_line.text_event(user, "x")]),
                               headers={"X-Line-Signature": "AAAA"}, verify=str(cert), timeout=10)
        assert forged.status_code == 400
        huge = requests.post(https + "/callback", data=b"x" * 2_000_000, verify=str(cert), timeout=10,
                             headers={"X-Line-Signature": "AAAA"})
        assert huge.status_code == 413

        # A resident adds the account, asks, and registers for notices: every answer is a reply.
        greeting, offer = resident.send(fake_line.follow_event(user), 2)
        assert "同意して登録する" in labels(offer)
        question = "住民票の写しをコンビニで取りたい"
        answers = resident.send(fake_line.text_event(user, question), 1)
        assert "コンビニ" in json.dumps(answers, ensure_ascii=False)  # the answer, or 「もしかして」 about it
        message = resident.tap(offer, "同意して登録する")
        for _ in range(8):
            if "決定" in labels(message):
                break
            message = resident.tap(message, "回答しない")
        done = resident.tap(message, "決定")
        assert "登録が完了しました" in done["text"]
        assert {d.kind for d in fake_line.deliveries if user in d.to} == {"reply"}

        # A notice scheduled 20 s ahead with the CLI: the dispatcher process multicasts it then.
        at = (dt.datetime.now(JST) + dt.timedelta(seconds=20)).replace(microsecond=0)
        text = "【テスト配信】配信プロセスの確認です"
        notice = run("broadcast", "create", "--text", text, "--at", at.replace(tzinfo=None).isoformat(),
                     "--allow-small-segment").strip().splitlines()[-1]
        assert notice.isdigit()
        before = len(fake_line.delivered(user))
        (sent,) = fake_line.wait_for_delivery(user, before + 1, timeout=90)[before:]
        assert sent["text"] == text
        (multicast,) = [d for d in fake_line.deliveries if d.kind == "multicast"]
        assert multicast.to == [user] and multicast.at >= at.timestamp() - 1.0 and multicast.retry_key

        # The admin: refused (in Japanese) from 127.0.0.1, the login page from 127.0.0.2.
        status, page, _ = admin_request(https_port, "127.0.0.1", cert, "/admin/login")
        assert status == 403 and "管理画面を開けません" in page
        status, page, headers = admin_request(https_port, "127.0.0.2", cert, "/admin/login")
        assert status == 200 and "ログイン" in page
        assert "secure" in headers["set-cookie"].lower() and headers["x-frame-options"] == "DENY"

        # The dispatcher stops cleanly on systemd's SIGTERM; nobody logged the resident's words.
        assert stack.stop("dispatcher") == 0
        logs = "".join(stack.log(n) for n in ("gunicorn", "dispatcher", "nginx"))
        logs += "".join(p.read_text(encoding="utf-8") for p in (workdir / "logs").glob("*.log"))
        assert question not in logs
        assert "POST /callback" in (workdir / "logs" / "nginx-access.log").read_text(encoding="utf-8")
    finally:
        stack.stop_all()
