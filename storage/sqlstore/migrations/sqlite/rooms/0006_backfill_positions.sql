-- Events backfilled from other servers get explicit negative stream
-- positions; SQLite's INTEGER PRIMARY KEY AUTOINCREMENT accepts them as they
-- are (AUTOINCREMENT only ever hands out values above the largest one), so
-- there is nothing to change here (PostgreSQL's identity column needs it).
SELECT 1;
