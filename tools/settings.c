/*
 * What an administrator grants the tools, per tenant, stored in the daemon's
 * database: attached SQLite databases and git repositories (name -> absolute
 * path) and the hosts http_get may reach ("host" or "host:port"). A PUT
 * replaces whole lists in one transaction; the tools' prepare hooks read them
 * in the parent before a call is sandboxed.
 */
#include "tools/tools_int.h"

#include <ctype.h>
#include <string.h>
#include <sys/stat.h>

static const char *const migrations[] = {
	"CREATE TABLE tools_databases (tenant TEXT NOT NULL, name TEXT NOT NULL, path TEXT NOT NULL,"
	" PRIMARY KEY (tenant, name));"
	"CREATE TABLE tools_repositories (tenant TEXT NOT NULL, name TEXT NOT NULL, path TEXT NOT NULL,"
	" PRIMARY KEY (tenant, name));"
	"CREATE TABLE tools_hosts (tenant TEXT NOT NULL, host TEXT NOT NULL, PRIMARY KEY (tenant, host));",
};

int tools_migrate(sqlite3 *db)
{
	static const ag_migration_set set = {"tools", migrations, sizeof migrations / sizeof migrations[0]};
	return ag_db_migrate(db, &set);
}

static int list_pairs(json_t *arr, sqlite3 *db, const char *sql, const char *tenant)
{
	sqlite3_stmt *st;
	int rc = ag_db_prepare(db, &st, sql);
	if (rc)
		return rc;
	ag_db_bind_text(st, 1, tenant);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		json_t *row =
			sqlite3_column_count(st) == 2
				? json_pack("{s:s, s:s}", "name", (const char *)sqlite3_column_text(st, 0),
					    "path", (const char *)sqlite3_column_text(st, 1))
				: json_string((const char *)sqlite3_column_text(st, 0));
		if (!row || json_array_append_new(arr, row)) {
			sqlite3_finalize(st);
			return ag_error_set(AG_ENOMEM, "out of memory listing tool settings");
		}
	}
	rc = rc == SQLITE_DONE ? 0 : ag_db_error(db, rc, "reading tool settings");
	sqlite3_finalize(st);
	return rc;
}

int tools_settings_get(json_t **out, sqlite3 *db, const char *tenant)
{
	json_t *v = json_pack("{s:[], s:[], s:[]}", "databases", "repositories", "allowed_hosts");
	if (!v)
		return ag_error_set(AG_ENOMEM, "out of memory");
	int rc = list_pairs(json_object_get(v, "databases"), db,
			    "SELECT name, path FROM tools_databases WHERE tenant = ?1 ORDER BY name", tenant);
	if (!rc)
		rc = list_pairs(json_object_get(v, "repositories"), db,
				"SELECT name, path FROM tools_repositories WHERE tenant = ?1 ORDER BY name",
				tenant);
	if (!rc)
		rc = list_pairs(json_object_get(v, "allowed_hosts"), db,
				"SELECT host FROM tools_hosts WHERE tenant = ?1 ORDER BY host", tenant);
	if (rc) {
		json_decref(v);
		return rc;
	}
	*out = v;
	return 0;
}

static bool valid_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
			return false;
	return true;
}

/* host, host:port, [v6]:port; letters, digits, '-', '.', ':' and brackets only. */
static bool valid_host(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 260)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("-.:[]", s[i]))
			return false;
	return true;
}

static int check_path(const char *kind, const char *name, const char *path, bool want_dir)
{
	struct stat st;
	if (path[0] != '/')
		return ag_error_set(AG_EINVAL, "%s '%s': the path must be absolute", kind, name);
	if (strlen(path) > 4000)
		return ag_error_set(AG_EINVAL, "%s '%s': the path is too long", kind, name);
	if (stat(path, &st))
		return ag_error_set(AG_EINVAL, "%s '%s': %s does not exist", kind, name, path);
	if (want_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode))
		return ag_error_set(AG_EINVAL, "%s '%s': %s is not a %s", kind, name, path,
				    want_dir ? "directory" : "regular file");
	return 0;
}

static int put_pairs(sqlite3 *db, const char *tenant, const json_t *list, const char *table, const char *kind,
		     bool want_dir)
{
	if (!json_is_array(list))
		return ag_error_set(AG_EINVAL, "%ss must be an array of {\"name\", \"path\"}", kind);
	char sql[160];
	snprintf(sql, sizeof sql, "DELETE FROM %s WHERE tenant = ?1", table);
	sqlite3_stmt *st;
	int rc = ag_db_prepare(db, &st, sql);
	if (rc)
		return rc;
	ag_db_bind_text(st, 1, tenant);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return ag_db_error(db, rc, "clearing tool settings");
	snprintf(sql, sizeof sql, "INSERT INTO %s (tenant, name, path) VALUES (?1, ?2, ?3)", table);
	size_t i;
	const json_t *e;
	json_array_foreach(list, i, e)
	{
		static const char *const keys[] = {"name", "path", NULL};
		const char *name, *path;
		if (!json_is_object(e) || ag_json_check_keys(e, keys) ||
		    ag_json_get_string(e, "name", true, &name) || ag_json_get_string(e, "path", true, &path))
			return ag_error_set(AG_EINVAL, "%ss[%zu] must be {\"name\": ..., \"path\": ...}",
					    kind, i);
		if (!valid_name(name))
			return ag_error_set(AG_EINVAL,
					    "%ss[%zu]: a name is 1..64 letters, digits, '-', '_', '.'", kind,
					    i);
		if ((rc = check_path(kind, name, path, want_dir)))
			return rc;
		if ((rc = ag_db_prepare(db, &st, sql)))
			return rc;
		ag_db_bind_text(st, 1, tenant);
		ag_db_bind_text(st, 2, name);
		ag_db_bind_text(st, 3, path);
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc == SQLITE_CONSTRAINT)
			return ag_error_set(AG_EINVAL, "%s '%s' is listed twice", kind, name);
		if (rc != SQLITE_DONE)
			return ag_db_error(db, rc, "saving tool settings");
	}
	return 0;
}

static int put_hosts(sqlite3 *db, const char *tenant, const json_t *list)
{
	if (!json_is_array(list))
		return ag_error_set(AG_EINVAL, "allowed_hosts must be an array of strings");
	sqlite3_stmt *st;
	int rc = ag_db_prepare(db, &st, "DELETE FROM tools_hosts WHERE tenant = ?1");
	if (rc)
		return rc;
	ag_db_bind_text(st, 1, tenant);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE)
		return ag_db_error(db, rc, "clearing allowed hosts");
	size_t i;
	const json_t *e;
	json_array_foreach(list, i, e)
	{
		if (!json_is_string(e) || !valid_host(json_string_value(e)))
			return ag_error_set(AG_EINVAL, "allowed_hosts[%zu] must be \"host\" or \"host:port\"",
					    i);
		if ((rc = ag_db_prepare(db, &st,
					"INSERT OR IGNORE INTO tools_hosts (tenant, host) VALUES (?1, ?2)")))
			return rc;
		ag_db_bind_text(st, 1, tenant);
		ag_db_bind_text(st, 2, json_string_value(e));
		rc = sqlite3_step(st);
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return ag_db_error(db, rc, "saving allowed hosts");
	}
	return 0;
}

int tools_settings_put(sqlite3 *db, const char *tenant, const json_t *settings)
{
	static const char *const keys[] = {"databases", "repositories", "allowed_hosts", NULL};
	if (!json_is_object(settings))
		return ag_error_set(AG_EINVAL, "settings must be a JSON object");
	int rc = ag_json_check_keys(settings, keys);
	if (rc)
		return rc;
	if ((rc = ag_db_begin(db)))
		return rc;
	const json_t *v;
	if (!rc && (v = json_object_get(settings, "databases")))
		rc = put_pairs(db, tenant, v, "tools_databases", "database", false);
	if (!rc && (v = json_object_get(settings, "repositories")))
		rc = put_pairs(db, tenant, v, "tools_repositories", "repository", true);
	if (!rc && (v = json_object_get(settings, "allowed_hosts")))
		rc = put_hosts(db, tenant, v);
	if (rc) {
		ag_db_rollback(db);
		return rc;
	}
	return ag_db_commit(db);
}

int tools_settings_lookup(char **out, sqlite3 *db, const char *tenant, const char *kind, const char *name)
{
	const char *sql;
	if (strcmp(kind, "database") == 0)
		sql = "SELECT path FROM tools_databases WHERE tenant = ?1 AND name = ?2";
	else if (strcmp(kind, "repository") == 0)
		sql = "SELECT path FROM tools_repositories WHERE tenant = ?1 AND name = ?2";
	else
		return ag_error_set(AG_EINVAL, "unknown settings kind '%s'", kind);
	if (!db)
		return ag_error_set(AG_ENOTFOUND, "no %s named '%s' is attached", kind, name);
	sqlite3_stmt *st;
	int rc = ag_db_prepare(db, &st, sql);
	if (rc)
		return rc;
	ag_db_bind_text(st, 1, tenant);
	ag_db_bind_text(st, 2, name);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = ag_db_column_strdup(st, 0);
		rc = *out ? 0 : ag_error_set(AG_ENOMEM, "out of memory");
	} else if (rc == SQLITE_DONE) {
		rc = ag_error_set(AG_ENOTFOUND,
				  "no %s named '%s' is attached (an admin attaches them with "
				  "PUT /v1/tools/settings)",
				  kind, name);
	} else {
		rc = ag_db_error(db, rc, "looking up a tool setting");
	}
	sqlite3_finalize(st);
	return rc;
}

int tools_settings_host_allowed(sqlite3 *db, const char *tenant, const char *host, unsigned port)
{
	json_t *s;
	int rc = tools_settings_get(&s, db, tenant);
	if (rc)
		return rc;
	/* An entry without a port allows the web's default ports. */
	const json_t *list = json_object_get(s, "allowed_hosts");
	bool ok = tools_host_listed(list, host, port, 80) || tools_host_listed(list, host, port, 443);
	json_decref(s);
	return ok ? 0 : ag_error_set(AG_EDENIED, "host %s:%u is not on the allow list", host, port);
}
