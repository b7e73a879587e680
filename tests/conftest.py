"""Shared pytest fixtures. Keep this file to imports: the fixtures live in tests/support/."""

from tests.support.moto_server import aws_env, moto_server
from tests.support.sshd import sftp_dir, sshd

__all__ = ["aws_env", "moto_server", "sftp_dir", "sshd"]
