"""Is a verification check's SQL exactly one read-only query?

Checks are written by managers and run on restored copies of production data, so the
validator is deliberately conservative: it accepts one SELECT, WITH ... SELECT, VALUES or
TABLE statement and refuses anything it cannot read with certainty (comments, dollar
quotes, backslashes), every keyword that writes or changes the session, row locks, and the
functions and catalogs that read files, settings, other databases or run dynamic SQL.
It is a first line only: the checks also run as an unprivileged role in a read-only
transaction (PostgreSQL) or on a read-only connection with an authorizer (SQLite).

Plain Python (no Django): the recovery engine re-checks stored SQL before running it.
"""

import re

MAX_LENGTH = 4000

_FIRST = {"SELECT", "WITH", "VALUES", "TABLE"}

# Keywords that write, lock, change the session or start another statement.
_FORBIDDEN = {
    "ABORT",
    "ALTER",
    "ANALYZE",
    "ATTACH",
    "BEGIN",
    "CALL",
    "CHECKPOINT",
    "CLUSTER",
    "COMMENT",
    "COMMIT",
    "COPY",
    "CREATE",
    "DEALLOCATE",
    "DELETE",
    "DETACH",
    "DISCARD",
    "DO",
    "DROP",
    "EXECUTE",
    "GRANT",
    "IMPORT",
    "INSERT",
    "INTO",
    "LISTEN",
    "LOAD",
    "LOCK",
    "MERGE",
    "NOTIFY",
    "PRAGMA",
    "PREPARE",
    "REFRESH",
    "REINDEX",
    "RELEASE",
    "RESET",
    "RETURNING",
    "REVOKE",
    "ROLLBACK",
    "SAVEPOINT",
    "SET",
    "SHARE",
    "TRUNCATE",
    "UNLISTEN",
    "UPDATE",
    "UPSERT",
    "VACUUM",
    # functions that write, read the server's files or settings, or run SQL given as text
    "CURRENT_SETTING",
    "SET_CONFIG",
    "NEXTVAL",
    "SETVAL",
    "LOAD_EXTENSION",
    "READFILE",
    "WRITEFILE",
    "EDIT",
    "FTS3_TOKENIZER",
    "INET_SERVER_ADDR",
    "INET_SERVER_PORT",
    "INET_CLIENT_ADDR",
    # catalogs about the whole server rather than the restored data
    "PG_AUTHID",
    "PG_SHADOW",
    "PG_USER",
    "PG_ROLES",
    "PG_DATABASE",
    "PG_SETTINGS",
    "PG_FILE_SETTINGS",
    "PG_HBA_FILE_RULES",
    "PG_IDENT_FILE_MAPPINGS",
    "PG_DB_ROLE_SETTING",
    "PG_USER_MAPPINGS",
    "PG_STAT_ACTIVITY",
    "PG_CONFIG",
}
_FORBIDDEN_PREFIXES = (
    "PG_READ",  # pg_read_file, pg_read_binary_file
    "PG_LS_",
    "PG_STAT_FILE",
    "PG_FILE",
    "PG_LOGDIR",
    "PG_TERMINATE",
    "PG_CANCEL",
    "PG_RELOAD",
    "PG_ROTATE",
    "PG_SLEEP",
    "PG_ADVISORY",
    "PG_REPLICATION",
    "PG_CREATE",
    "PG_DROP",
    "PG_PROMOTE",
    "PG_SWITCH",
    "LO_",  # large objects: lo_import / lo_export read and write server files
    "DBLINK",
    "QUERY_TO_XML",
    "CURSOR_TO_XML",
    "TABLE_TO_XML",
    "SCHEMA_TO_XML",
    "DATABASE_TO_XML",
    "SQLITE_COMPILEOPTION",
)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def _refuse(reason: str) -> str:
    return (
        "sql must be exactly one read-only query (SELECT, WITH ... SELECT, VALUES or TABLE): "
        + reason
    )


def _words(text: str) -> tuple[list[str], str | None]:
    """Upper-cased bare words outside quotes, or a problem that stops the reading."""
    words, i, n = [], 0, len(text)
    while i < n:
        char = text[i]
        if char in "'\"`":
            end = i + 1
            while True:
                end = text.find(char, end)
                if end < 0:
                    return words, "a quote is not closed"
                if text[end + 1 : end + 2] == char:  # a doubled quote stays inside
                    end += 2
                    continue
                break
            i = end + 1
            continue
        if text.startswith("--", i) or text.startswith("/*", i):
            return words, "comments are not allowed; remove them"
        if char == "$":
            return words, "dollar signs (dollar quotes, parameters) are not allowed"
        if char == "\\":
            return words, "backslashes are not allowed"
        if char == ";":
            if text[i + 1 :].strip():
                return words, "only one statement is allowed (remove the ';')"
            i += 1
            continue
        match = _WORD.match(text, i)
        if match:
            words.append(match.group(0).upper())
            i = match.end()
            continue
        i += 1
    return words, None


def problem(sql: str) -> str | None:
    """Why `sql` is refused as a verification check, or None when it is one read-only query."""
    text = str(sql or "").strip()
    if not text:
        return "sql is missing"
    if len(text) > MAX_LENGTH:
        return f"sql is longer than {MAX_LENGTH} characters"
    if "\x00" in text:
        return _refuse("it contains a NUL character")
    words, trouble = _words(text)
    if trouble:
        return _refuse(trouble)
    if not words or words[0] not in _FIRST or not re.match(r"^[A-Za-z]", text):
        return _refuse("it must start with SELECT, WITH, VALUES or TABLE")
    for position, word in enumerate(words):
        if word in _FORBIDDEN:
            return _refuse(f"{word} is not allowed")
        if word.startswith(_FORBIDDEN_PREFIXES):
            return _refuse(f"{word.lower()} is not allowed")
        if word == "FOR" and position + 1 < len(words) and words[position + 1] in {"NO", "KEY"}:
            return _refuse("row locks (FOR UPDATE / FOR SHARE) are not allowed")
    return None
