"""Errors that are a user's mistake: shown as a message, never as a traceback.

Every message is written twice: in English (``str(exc)``, what tests and logs match) and in Indonesian
(``exc.pesan``), which the CLI prints first ("the UI speaks Bahasa Indonesia first, English second").
"""

from __future__ import annotations

import errno
from collections.abc import Mapping
from pathlib import Path
from typing import Any


class UserError(Exception):
    """Bad input or a bad request: the message says what is wrong and how to fix it.

    ``message`` is the English text (``str(exc)``); ``pesan`` the same in Indonesian, with file names, column
    names, commands and options verbatim. Raise it as ``UserError("...", pesan="...")``.
    """

    exit_code = 1

    def __init__(self, message: str, *, pesan: str | None = None, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self._pesan = pesan

    def __str__(self) -> str:
        return self.message

    @property
    def pesan(self) -> str:
        """The message in Indonesian; the English one when none was given."""
        return self.message if self._pesan is None else self._pesan


class NotFoundError(UserError, KeyError):
    """A name that is looked up and not there (an SOP id): a :class:`UserError`, and a :class:`KeyError` for
    callers that catch the lookup's usual exception."""


# what the file system says, in Indonesian, for the errors a user meets (strerror is English)
_OS_REASONS_ID = {
    errno.ENOENT: "berkas atau folder tidak ada",
    errno.EACCES: "tidak ada izin",
    errno.EPERM: "tidak ada izin",
    errno.ENOSPC: "disk penuh",
    errno.EDQUOT: "kuota disk habis",
    errno.ENOTDIR: "bukan sebuah folder",
    errno.EISDIR: "sebuah folder, bukan berkas",
    errno.EROFS: "disk hanya bisa dibaca",
    errno.EEXIST: "berkas atau folder dengan nama ini sudah ada",
    errno.EBUSY: "sedang dipakai",
    errno.ENAMETOOLONG: "nama terlalu panjang",
    errno.EIO: "galat baca/tulis pada disk",
}


def os_reason(exc: OSError) -> str:
    """Why the file system refused, in Indonesian (``exc.strerror``, in English, when there is no wording)."""
    return _OS_REASONS_ID.get(exc.errno or 0) or exc.strerror or str(exc)


def read_text_file(path: Path, what: str, apa: str) -> str:
    """A configuration file's text; one that cannot be read, or is not UTF-8 (a spreadsheet or an export
    given by mistake), is a :class:`UserError` naming ``what`` it should have been (``apa``: the same in
    Indonesian, e.g. "mapping file", "berkas pemetaan")."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"{path}: cannot read the {what} ({exc.strerror})",
                        pesan=f"{path}: {apa} tidak dapat dibaca ({os_reason(exc)})") from None
    except UnicodeDecodeError:
        raise UserError(f"{path}: not a UTF-8 text file; is it the {what}? (save it as UTF-8 YAML)",
                        pesan=f"{path}: bukan berkas teks UTF-8; benarkah ini {apa}? "
                              "(simpan sebagai YAML dengan encoding UTF-8)") from None


def _yaml_parts(exc: Exception) -> tuple[int | None, str, str | None, int | None]:
    """A YAML syntax error's 1-based line (None when unknown), what the parser found there, its context
    (e.g. an unclosed quote) and the line where that context starts when it is another line."""
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    start, context = getattr(exc, "context_mark", None), getattr(exc, "context", None)
    line = None if mark is None else mark.line + 1
    opened = start.line + 1 if context and start is not None and start.line != getattr(mark, "line", None) else None
    return line, problem or str(exc).splitlines()[0], context or None, opened


def yaml_problem(exc: Exception) -> tuple[int | None, str, str]:
    """A YAML syntax error's 1-based line (None when unknown) and what the parser found there, in English and
    in Indonesian (the parser's own words stay as they are; where an unclosed quote opened is translated)."""
    line, found, context, opened = _yaml_parts(exc)
    english, indonesian = found, found
    if context:  # e.g. an unclosed quote: say where it opened
        english = f"{found}, {context}" + (f" that starts on line {opened}" if opened is not None else "")
        indonesian = f"{found}, {context}" + (f" (mulai di baris {opened})" if opened is not None else "")
    return line, english, indonesian


def yaml_error(path: Path | str, exc: Exception) -> UserError:
    """A YAML syntax error as a message with the file, the line and what the parser found."""
    line, english, indonesian = yaml_problem(exc)
    where, di = (str(path), str(path)) if line is None else (f"{path}, line {line}", f"{path}, baris {line}")
    return UserError(f"{where}: not valid YAML ({english}); check quoting and indentation "
                     "(a ':' inside text needs quotes)",
                     pesan=f"{di}: bukan YAML yang valid ({indonesian}); periksa tanda kutip dan indentasi "
                           "(teks yang memuat ':' harus diberi tanda kutip)")


# what pydantic's error types say, in Indonesian (its ``msg`` is English); ``{...}`` are its ``ctx`` values
_PYDANTIC_ID = {
    "missing": "isian wajib ini belum ada",
    "extra_forbidden": "isian ini tidak dikenal",
    "string_type": "harus berupa teks",
    "string_too_short": "teks terlalu pendek (minimal {min_length} karakter)",
    "string_too_long": "teks terlalu panjang (maksimal {max_length} karakter)",
    "string_pattern_mismatch": "tidak sesuai pola {pattern}",
    "int_type": "harus berupa bilangan bulat",
    "int_parsing": "harus berupa bilangan bulat",
    "int_from_float": "harus berupa bilangan bulat, tanpa pecahan",
    "float_type": "harus berupa angka",
    "float_parsing": "harus berupa angka",
    "bool_type": "harus true atau false",
    "bool_parsing": "harus true atau false",
    "list_type": "harus berupa daftar, mis. [a, b]",
    "tuple_type": "harus berupa daftar, mis. [a, b]",
    "set_type": "harus berupa daftar, mis. [a, b]",
    "dict_type": "harus berupa pemetaan baris 'kunci: nilai'",
    "model_type": "harus berupa pemetaan baris 'isian: nilai'",
    "model_attributes_type": "harus berupa pemetaan baris 'isian: nilai'",
    "literal_error": "harus salah satu dari {expected}",
    "enum": "harus salah satu dari {expected}",
    "date_type": "harus berupa tanggal YYYY-MM-DD",
    "date_parsing": "harus berupa tanggal YYYY-MM-DD",
    "date_from_datetime_parsing": "harus berupa tanggal YYYY-MM-DD",
    "datetime_type": "harus berupa tanggal dan waktu, mis. 2026-02-02 08:00",
    "datetime_parsing": "harus berupa tanggal dan waktu, mis. 2026-02-02 08:00",
    "too_short": "terlalu sedikit isinya (minimal {min_length})",
    "too_long": "terlalu banyak isinya (maksimal {max_length})",
    "greater_than": "harus lebih besar dari {gt}",
    "greater_than_equal": "harus paling sedikit {ge}",
    "less_than": "harus lebih kecil dari {lt}",
    "less_than_equal": "harus paling banyak {le}",
    "none_required": "harus dikosongkan",
    "frozen_instance": "tidak dapat diubah",
}


def pilihan(expected: object) -> str:
    """pydantic's allowed values ("'a', 'b' or 'c'", its ``ctx['expected']``) in Indonesian ("'a', 'b' atau 'c'")."""
    head, sep, tail = str(expected).rpartition(" or ")
    return f"{head} atau {tail}" if sep else str(expected)


def pydantic_pesan(err: Mapping[str, Any]) -> str:
    """One pydantic error (an item of ``ValidationError.errors()``) in Indonesian, without its location; a rare
    type gets a generic text with pydantic's own (English) words in brackets."""
    template = _PYDANTIC_ID.get(str(err.get("type")))
    if template is not None:
        ctx = dict(err.get("ctx") or {})
        if "expected" in ctx:
            ctx["expected"] = pilihan(ctx["expected"])
        try:
            return template.format(**ctx)
        except (KeyError, IndexError):
            pass
    return f"nilainya tidak valid ({err.get('msg', err.get('type'))})"


def validation_errors(path: Path | str, errors: list[Any], hint: str = "", petunjuk: str = "") -> UserError:
    """Every problem pydantic found (``ValidationError.errors()``), each with its field, in one message;
    ``hint`` ends the English message, ``petunjuk`` the Indonesian one (``hint`` when not given)."""
    parts, bagian = [], []
    for err in errors:
        loc = ".".join(str(p) for p in err["loc"])
        extra = err["type"] == "extra_forbidden"
        fix = "remove it or correct its spelling" if extra else "correct the value"
        perbaiki = "hapus, atau perbaiki ejaannya" if extra else "perbaiki nilainya"
        parts.append(f"{loc}: {err['msg']} ({fix})")
        bagian.append(f"{loc}: {pydantic_pesan(err)} ({perbaiki})")
    petunjuk = petunjuk or hint
    return UserError(f"{path}: " + "; ".join(parts) + (f"; {hint}" if hint else ""),
                     pesan=f"{path}: " + "; ".join(bagian) + (f"; {petunjuk}" if petunjuk else ""))
