"""How the PostgreSQL store orders rows that tie where SQLite's `rowid` breaks the tie:
by `seq`, an identity column that numbers the rows of `jobs` and `result_cache` as they
are inserted (SQLite's INSERT OR REPLACE gives a replaced row a new rowid; the cache's
put deletes and inserts for the same reason)."""

INSERTED = "seq"
