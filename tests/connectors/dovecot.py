"""A private Dovecot IMAP server for tests and the benchmark (see NOTES.md, "Real peers").

Dovecot runs in the foreground from a temporary directory with its own config,
sockets, state and log, listening on a free loopback port. Users live in a
passwd-file that Dovecot re-reads when it changes, so a test can add a fresh
mailbox owner at any time. Mail processes run as the `mail` account, never root.

Imported by path from `benchmarks/sync.py` too, so it depends on nothing but the
standard library.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DOVECOT = "/usr/sbin/dovecot"

CONFIG = """\
listen = 127.0.0.1
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:~/Maildir
first_valid_uid = 1
protocols = imap
default_login_user = {login_user}
default_internal_user = {login_user}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {root}/users
}}
userdb {{
  driver = passwd-file
  args = {root}/users
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


def dovecot_available() -> bool:
    return Path(DOVECOT).exists() and shutil.which("doveconf") is not None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class DovecotServer:
    """`start()`, `add_user()`, `maildir(user)`, `stop()`; one instance per test session."""

    def __init__(self, root: Path | None = None) -> None:
        # Dovecot's unprivileged auth and mail processes must reach the directory:
        # pytest's temporary directories are private to root, so make our own.
        self.owns_root = root is None
        self.root = root if root is not None else Path(tempfile.mkdtemp(prefix="syncd-dovecot-"))
        self.root.chmod(0o755)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        mail = pwd.getpwnam("mail")
        # As root, mail processes must not run as root: every user gets the mail account's ids.
        self.uid, self.gid = mail.pw_uid, mail.pw_gid
        self.users: dict[str, str] = {}
        self.pool: list[str] = []

    @property
    def config_path(self) -> Path:
        return self.root / "dovecot.conf"

    def start(self, timeout: float = 15.0, users: int = 50, password: str = "secret") -> None:
        for sub in ("run", "state", "homes"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self.pool = [f"user{n}" for n in range(1, users + 1)]
        lines = []
        for user in self.pool:
            home = self.home(user)
            home.mkdir(parents=True, exist_ok=True)
            os.chown(home, self.uid, self.gid)
            lines.append(f"{user}:{{PLAIN}}{password}:{self.uid}:{self.gid}::{home}::")
        (self.root / "users").write_text("\n".join(lines) + "\n")
        login_user = "dovenull" if _account_exists("dovenull") else "mail"
        self.config_path.write_text(
            CONFIG.format(root=self.root, port=self.port, login_user=login_user)
        )
        self.process = subprocess.Popen(
            [DOVECOT, "-F", "-c", str(self.config_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self._wait_for_port(timeout)
        time.sleep(0.3)  # the auth process starts a moment after the listener

    def _wait_for_port(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"dovecot exited early: {self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"dovecot did not listen on {self.port}: {self.log_tail()}")

    def add_user(self, name: str | None = None, password: str = "secret") -> str:
        """A fresh mailbox owner (one of those created at start, as Dovecot's auth process
        caches the passwd-file); returns its name."""
        del name  # the pool decides names, so a test never reuses another's mailbox
        user = f"user{len(self.users) + 1}"
        if user not in self.pool:
            raise RuntimeError(f"only {len(self.pool)} users were created at start")
        self.users[user] = password
        return user

    def home(self, user: str) -> Path:
        return self.root / "homes" / user

    def maildir(self, user: str) -> Path:
        return self.home(user) / "Maildir"

    def chown_tree(self, path: Path) -> None:
        """Files written directly (not over IMAP) must belong to the mail account."""
        for dirpath, dirnames, filenames in os.walk(path):
            os.chown(dirpath, self.uid, self.gid)
            for name in (*dirnames, *filenames):
                os.chown(os.path.join(dirpath, name), self.uid, self.gid)

    def log_tail(self, lines: int = 20) -> str:
        log = self.root / "dovecot.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None
        if self.owns_root:
            shutil.rmtree(self.root, ignore_errors=True)


def _account_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def make_message(
    *,
    message_id: str | None,
    sender: str,
    to: str,
    subject: str,
    body: str,
    date: str = "Mon, 02 Mar 2026 09:00:00 +0000",
    in_reply_to: str | None = None,
    references: str | None = None,
) -> bytes:
    """A small RFC 5322 message, CRLF line ends, as a mail client would append it."""
    headers = [f"From: {sender}", f"To: {to}", f"Subject: {subject}", f"Date: {date}"]
    if message_id is not None:
        headers.append(f"Message-ID: <{message_id}>")
    if in_reply_to is not None:
        headers.append(f"In-Reply-To: <{in_reply_to}>")
    if references is not None:
        headers.append(f"References: {references}")
    headers += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8"]
    text = "\r\n".join(headers) + "\r\n\r\n" + body.replace("\n", "\r\n") + "\r\n"
    return text.encode("utf-8")
