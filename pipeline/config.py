"""Settings (environment variables ``PATUH_*``), default paths and the pseudonymisation secret."""

from __future__ import annotations

import errno
import os
import secrets
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.errors import UserError, os_reason

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# A text outside the SOP (an activity, a role) goes into results and messages only when at least this many
# cases (at ingest: rows) use it: that common, it names a kind of work; a rarer one may be a note about a person
PUBLIC_LABEL_CASES = 5


def _env_path(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value) if value else default


@dataclass(frozen=True)
class Settings:
    """Where Patuh finds its catalogue and keeps its data."""

    catalogue_dir: Path = field(default_factory=lambda: _env_path("PATUH_SOP_DIR", PROJECT_ROOT / "sop_models"))
    data_dir: Path = field(default_factory=lambda: _env_path("PATUH_DATA_DIR", PROJECT_ROOT / "data"))
    db_path: Path = field(
        default_factory=lambda: _env_path("PATUH_DB", PROJECT_ROOT / "data" / "patuh.duckdb")
    )
    key_file: Path = field(
        default_factory=lambda: _env_path("PATUH_KEY_FILE", Path.home() / ".config" / "patuh" / "secret.key")
    )

    @property
    def published_dir(self) -> Path:
        """Folder of published read-only result files (DESIGN section 5)."""
        return self.db_path.parent / "published"

    @property
    def institutions_file(self) -> Path:
        return self.catalogue_dir / "institutions.yaml"


def get_settings() -> Settings:
    return Settings()


# A shorter key can be guessed: HMAC with an empty or one-character key is a plain hash of the student number
# (a small space anyone can enumerate). The key file made on first use holds 64 hex characters.
MIN_SECRET_BYTES = 32
NEW_KEY_COMMAND = 'python -c "import secrets; print(secrets.token_hex(32))"'


@dataclass(frozen=True)
class Secret:
    """The pseudonymisation key and where it came from (said when a database was loaded with another key)."""

    key: bytes = field(repr=False)  # never in a traceback or a log
    source: str  # "PATUH_SECRET" or "the key file <path>", in English
    sumber: str  # the same in Indonesian
    created: bool = False  # the key file did not exist and was made now
    key_file: Path | None = None  # None: the key came from PATUH_SECRET (or a caller)


def load_secret(settings: Settings | None = None) -> bytes:
    """Return the installation's pseudonymisation key (see :func:`load_key`)."""
    return load_key(settings).key


def load_key(settings: Settings | None = None) -> Secret:
    """The installation's pseudonymisation key and its source.

    ``PATUH_SECRET`` wins; otherwise a 0600 key file is created on first use. The key never goes into
    the database or the repository: a keyed hash of a student number cannot be reversed by enumeration.
    A key shorter than :data:`MIN_SECRET_BYTES` (an empty key file, a one-character ``PATUH_SECRET``), a key
    file others can write, or a key file that cannot be read or made is a :class:`UserError`; a key file
    others can read is used with a warning on stderr.
    """
    env = os.environ.get("PATUH_SECRET")
    if env:
        if len(env.strip().encode("utf-8")) < MIN_SECRET_BYTES:
            raise UserError(
                f"PATUH_SECRET is too short ({len(env.strip())} character(s); at least {MIN_SECRET_BYTES} are "
                "needed): a short key makes the pseudonyms of student and case numbers guessable. Set it to a "
                f"long random key, e.g. the output of {NEW_KEY_COMMAND}, or unset it to use the key file "
                f"(PATUH_KEY_FILE, default ~/.config/patuh/secret.key). Careful: a database loaded with another "
                "key refuses the new one; give the key used before",
                pesan=f"PATUH_SECRET terlalu pendek ({len(env.strip())} karakter; minimal {MIN_SECRET_BYTES}): kunci "
                      "yang pendek membuat pseudonim nomor siswa dan nomor kasus dapat ditebak. Isi dengan kunci acak "
                      f"yang panjang, mis. keluaran {NEW_KEY_COMMAND}, atau hapus variabel itu agar berkas kunci "
                      "dipakai (PATUH_KEY_FILE, bawaan ~/.config/patuh/secret.key). Perhatian: basis data yang "
                      "dimuat dengan kunci lain menolak kunci baru; berikan kunci yang dipakai sebelumnya")
        return Secret(env.encode("utf-8"), "PATUH_SECRET", "PATUH_SECRET")
    key_file = (settings or get_settings()).key_file
    source, sumber = f"the key file {key_file}", f"berkas kunci {key_file}"
    if os.environ.get("PATUH_KEY_FILE"):
        source, sumber = f"{source} (PATUH_KEY_FILE)", f"{sumber} (PATUH_KEY_FILE)"
    try:
        read = _read_key_file(key_file)
        created = read is None
        key = _create_key_file(key_file) if read is None else read
    except OSError as exc:
        raise UserError(
            f"{key_file}: cannot use the pseudonymisation key file ({exc.strerror or exc}); set PATUH_KEY_FILE to "
            "a file you can read (it is created on first use; keep the one loads were made with) or PATUH_SECRET "
            "to the key",
            pesan=f"{key_file}: berkas kunci pseudonimisasi tidak dapat dipakai ({os_reason(exc)}); arahkan "
                  "PATUH_KEY_FILE ke berkas yang dapat dibaca (dibuat otomatis bila belum ada; pakai berkas yang "
                  "dipakai untuk pemuatan sebelumnya) atau isi PATUH_SECRET dengan kuncinya") from None
    if len(key) < MIN_SECRET_BYTES:
        raise UserError(
            f"{key_file}: the pseudonymisation key file holds {'no key' if not key else 'too short a key'} "
            f"({len(key)} bytes; at least {MIN_SECRET_BYTES} are needed): a short key makes the pseudonyms of "
            f"student and case numbers guessable. Write a long random key into it ({NEW_KEY_COMMAND} > "
            f"{key_file}), or delete the file so that a new one is made on the next load. Careful: a new key "
            "does not link new loads to earlier ones; a database loaded with the old key refuses it (load the "
            "exports again into a new database)",
            pesan=f"{key_file}: berkas kunci pseudonimisasi "
                  f"{'kosong' if not key else 'berisi kunci yang terlalu pendek'} ({len(key)} byte; minimal "
                  f"{MIN_SECRET_BYTES}): kunci yang pendek membuat pseudonim nomor siswa dan nomor kasus dapat "
                  f"ditebak. Tulis kunci acak yang panjang ke berkas itu ({NEW_KEY_COMMAND} > {key_file}), atau "
                  "hapus berkasnya agar berkas baru dibuat pada pemuatan berikutnya. Perhatian: dengan kunci baru, "
                  "pemuatan baru tidak tersambung dengan pemuatan sebelumnya; basis data yang dimuat dengan kunci "
                  "lama menolaknya (muat ulang ekspornya ke basis data baru)")
    return Secret(key, source, sumber, created=created, key_file=key_file)


def _read_key_file(key_file: Path) -> bytes | None:
    """The key in ``key_file`` (its mode checked first), or None when there is no such file."""
    try:
        fd = os.open(key_file, os.O_RDONLY)  # the mode checked is the mode of the file then read
    except FileNotFoundError:
        if not key_file.parent.is_dir():  # e.g. ~/.config/patuh on first use; a file in the way says so
            key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return None
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(key_file))
        _check_mode(key_file, mode)
        return handle.read().strip()


def _create_key_file(key_file: Path) -> bytes:
    key = secrets.token_hex(32).encode("ascii")
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, stat.S_IRUSR | stat.S_IWUSR)
    except FileExistsError:  # another process made it first: its key is the key
        return _read_key_file(key_file) or b""
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key


_warned: set[Path] = set()


def _check_mode(key_file: Path, mode: int) -> None:
    """Like ssh with a private key: a key file others can write is refused (whoever can write it can put in a key
    of their own, so that pseudonyms become theirs to compute, or a new key that splits every case); one others
    can only read is used with a warning: the key may have leaked, but refusing would stop loads on a shared
    machine where the owner chose to share it with a group (a cron account), and chmod fixes it."""
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UserError(
            f"{key_file}: the pseudonymisation key file is writable by other users (mode {stat.S_IMODE(mode):04o}): "
            f"anyone who can write it can change the key. Run 'chmod 600 {key_file}' (and check that its key is "
            "still the one loads were made with), or give the key with PATUH_SECRET",
            pesan=f"{key_file}: berkas kunci pseudonimisasi dapat ditulis pengguna lain "
                  f"(mode {stat.S_IMODE(mode):04o}): siapa pun yang dapat menulisnya "
                  f"dapat mengganti kuncinya. Jalankan 'chmod 600 {key_file}' "
                  "(lalu periksa bahwa kuncinya masih kunci yang dipakai untuk pemuatan), atau berikan kunci dengan "
                  "PATUH_SECRET")
    if mode & (stat.S_IRGRP | stat.S_IROTH) and key_file not in _warned:
        _warned.add(key_file)
        sys.stderr.write(
            f"Peringatan: {key_file}: berkas kunci pseudonimisasi dapat dibaca pengguna lain (mode "
            f"{stat.S_IMODE(mode):04o}); siapa pun yang membacanya dapat menghitung pseudonim nomor siswa. Jalankan "
            f"'chmod 600 {key_file}'\n"
            f"Warning: {key_file}: the pseudonymisation key file is readable by other users (mode "
            f"{stat.S_IMODE(mode):04o}); anyone who reads it can compute the pseudonyms of student numbers. Run "
            f"'chmod 600 {key_file}'\n")
