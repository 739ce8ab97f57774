/*
 * retrieval's schema. Collections carry their ACL as two JSON arrays.
 * Documents keep their text in 256 KiB segments (so a 100 MB file never has
 * to be one value in memory); chunks are byte ranges of that text, and the
 * FTS5 table indexes them as external content, kept in step by triggers so
 * that deleting a chunk row removes its index entries too.
 */
#include "retrieval/internal.h"

static const char *const retrieval_sql[] = {
	"CREATE TABLE collections ("
	" id TEXT PRIMARY KEY,"
	" tenant TEXT NOT NULL,"
	" name TEXT NOT NULL,"
	" description TEXT NOT NULL DEFAULT '',"
	" created_by TEXT NOT NULL,"
	" created_ms INTEGER NOT NULL,"
	" readable_roles TEXT NOT NULL DEFAULT '[]',"
	" readable_users TEXT NOT NULL DEFAULT '[]',"
	" UNIQUE (tenant, name));"
	"CREATE TABLE documents ("
	" id TEXT PRIMARY KEY,"
	" collection_id TEXT NOT NULL REFERENCES collections(id),"
	" title TEXT NOT NULL,"
	" source TEXT NOT NULL,"
	" format TEXT NOT NULL,"
	" content_hash TEXT NOT NULL,"
	" commit_id TEXT NOT NULL DEFAULT '',"
	" blob_id TEXT NOT NULL DEFAULT '',"
	" created_by TEXT NOT NULL,"
	" created_ms INTEGER NOT NULL,"
	" date_ms INTEGER NOT NULL,"
	" text_bytes INTEGER NOT NULL DEFAULT 0,"
	" chunks INTEGER NOT NULL DEFAULT 0,"
	" UNIQUE (collection_id, source));"
	"CREATE INDEX documents_hash ON documents(collection_id, content_hash);"
	"CREATE TABLE document_text ("
	" document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,"
	" seq INTEGER NOT NULL,"
	" start_byte INTEGER NOT NULL,"
	" data BLOB NOT NULL,"
	" PRIMARY KEY (document_id, seq)) WITHOUT ROWID;"
	"CREATE TABLE chunks ("
	" id INTEGER PRIMARY KEY,"
	" document_id TEXT NOT NULL REFERENCES documents(id) ON DELETE CASCADE,"
	" collection_id TEXT NOT NULL,"
	" seq INTEGER NOT NULL,"
	" title TEXT NOT NULL,"
	" title_path TEXT NOT NULL,"
	" body TEXT NOT NULL,"
	" start_byte INTEGER NOT NULL,"
	" end_byte INTEGER NOT NULL);"
	"CREATE INDEX chunks_document ON chunks(document_id, seq);"
	"CREATE VIRTUAL TABLE chunks_fts USING fts5(title, body, content='chunks', content_rowid='id',"
	" prefix='2 3', tokenize='porter unicode61 remove_diacritics 2');"
	"INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('rank', 'bm25(4.0, 1.0)');"
	"CREATE TRIGGER chunks_ai AFTER INSERT ON chunks BEGIN"
	" INSERT INTO chunks_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END;"
	"CREATE TRIGGER chunks_ad AFTER DELETE ON chunks BEGIN"
	" INSERT INTO chunks_fts(chunks_fts, rowid, title, body) VALUES ('delete', old.id, old.title, "
	"old.body);"
	" END;"
	"CREATE TRIGGER chunks_au AFTER UPDATE ON chunks BEGIN"
	" INSERT INTO chunks_fts(chunks_fts, rowid, title, body) VALUES ('delete', old.id, old.title, "
	"old.body);"
	" INSERT INTO chunks_fts(rowid, title, body) VALUES (new.id, new.title, new.body); END;",
};

int retrieval_migrate(sqlite3 *db)
{
	static const ag_migration_set set = {"retrieval", retrieval_sql,
					     sizeof retrieval_sql / sizeof retrieval_sql[0]};
	return ag_db_migrate(db, &set);
}

int retrieval_optimize(sqlite3 *db)
{
	int rc = ag_db_exec(db, "INSERT INTO chunks_fts(chunks_fts) VALUES ('optimize')");
	return rc ? ag_error_wrap(rc, "optimising the search index") : 0;
}
