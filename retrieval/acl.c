/*
 * Collections and who may read them. A collection belongs to one tenant;
 * readable_by lists roles and users. Both lists empty means every role of the
 * tenant reads it; a tenant's admins and the collection's creator always do.
 * Changing a collection's documents needs admin or analyst on top of read
 * access. Objects of another tenant, or ones the caller may not read, are
 * reported as not found so their existence does not leak.
 */
#include "retrieval/internal.h"

#include <stdio.h>
#include <string.h>

static const char *const roles[] = {"admin", "analyst", "viewer", "auditor"};

bool retrieval_role_valid(const char *role)
{
	for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
		if (role && strcmp(role, roles[i]) == 0)
			return true;
	return false;
}

int retrieval_check_principal(const retrieval_principal *p)
{
	if (!p || !p->tenant || !*p->tenant || !p->user || !*p->user || !retrieval_role_valid(p->role))
		return ag_error_set(AG_EINVAL,
				    "retrieval: the caller needs a tenant, a user and a known role");
	return 0;
}

int retrieval_bind_named(sqlite3_stmt *st, const char *name, const char *value)
{
	int idx = sqlite3_bind_parameter_index(st, name);
	if (idx <= 0)
		return 0;
	return ag_db_bind_text(st, idx, value);
}

int retrieval_acl_bind(sqlite3_stmt *st, const retrieval_principal *p)
{
	int rc = retrieval_bind_named(st, ":tenant", p->tenant);
	if (!rc)
		rc = retrieval_bind_named(st, ":user", p->user);
	if (!rc)
		rc = retrieval_bind_named(st, ":role", p->role);
	return rc ? ag_error_set(AG_ENOMEM, "binding the caller") : 0;
}

static bool may_write(const retrieval_principal *p)
{
	return strcmp(p->role, "admin") == 0 || strcmp(p->role, "analyst") == 0;
}

int retrieval_coll_resolve(coll_ref *out, sqlite3 *db, const retrieval_principal *p, const char *name,
			   bool write)
{
	int rc = retrieval_check_principal(p);
	if (rc)
		return rc;
	if (!name || !*name)
		return ag_error_set(AG_EINVAL, "a collection name is required");
	sqlite3_stmt *st;
	if ((rc = ag_db_prepare(
		     db, &st,
		     "SELECT col.id, col.name FROM collections col WHERE (col.name = :name OR col.id = :name)"
		     " AND " RETRIEVAL_ACL_SQL " ORDER BY col.name = :name DESC LIMIT 1")))
		return rc;
	if ((rc = retrieval_acl_bind(st, p)) || (rc = retrieval_bind_named(st, ":name", name))) {
		sqlite3_finalize(st);
		return rc;
	}
	int s = sqlite3_step(st);
	if (s == SQLITE_ROW) {
		snprintf(out->id, sizeof out->id, "%s", (const char *)sqlite3_column_text(st, 0));
		snprintf(out->name, sizeof out->name, "%s", (const char *)sqlite3_column_text(st, 1));
		rc = 0;
	} else if (s == SQLITE_DONE) {
		rc = ag_error_set(AG_ENOTFOUND, "no collection '%s'", name);
	} else {
		rc = ag_db_error(db, s, "looking up a collection");
	}
	sqlite3_finalize(st);
	if (!rc && write && !may_write(p))
		return ag_error_set(AG_EDENIED, "role %s may not change collection '%s'", p->role, name);
	return rc;
}

static bool name_valid(const char *name)
{
	size_t n = name ? strlen(name) : 0;
	if (n == 0 || n > 128)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_' || c == '.'))
			return false;
	}
	return true;
}

static int string_array(char **out, const char *const *items, size_t n, bool check_role)
{
	json_t *a = json_array();
	if (!a)
		return ag_error_set(AG_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		if (!items[i] || !*items[i] || strlen(items[i]) > 128) {
			json_decref(a);
			return ag_error_set(AG_EINVAL, "readable_by entries must be 1..128 bytes");
		}
		if (check_role && !retrieval_role_valid(items[i])) {
			json_decref(a);
			return ag_error_set(AG_EINVAL, "unknown role '%s' (admin, analyst, viewer, auditor)",
					    items[i]);
		}
		if (json_array_append_new(a, json_string(items[i]))) {
			json_decref(a);
			return ag_error_set(AG_EINVAL, "readable_by entries must be UTF-8");
		}
	}
	int rc = ag_json_dump(out, NULL, a);
	json_decref(a);
	return rc;
}

static int load_list(char ***out, size_t *n_out, const char *text)
{
	json_t *a;
	*out = NULL;
	*n_out = 0;
	int rc = ag_json_parse(&a, text, strlen(text));
	if (rc)
		return rc;
	size_t n = json_is_array(a) ? json_array_size(a) : 0;
	char **items = n ? ag_calloc(n, sizeof *items) : NULL;
	if (n && !items) {
		json_decref(a);
		return ag_error_set(AG_ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		const char *s = json_string_value(json_array_get(a, i));
		items[i] = ag_strdup(s ? s : "");
		if (!items[i]) {
			for (size_t j = 0; j < i; j++)
				ag_free(items[j]);
			ag_free(items);
			json_decref(a);
			return ag_error_set(AG_ENOMEM, "out of memory");
		}
	}
	json_decref(a);
	*out = items;
	*n_out = n;
	return 0;
}

static void collection_clear(retrieval_collection *c)
{
	ag_free(c->id);
	ag_free(c->tenant);
	ag_free(c->name);
	ag_free(c->description);
	ag_free(c->created_by);
	for (size_t i = 0; i < c->nroles; i++)
		ag_free(c->roles[i]);
	ag_free(c->roles);
	for (size_t i = 0; i < c->nusers; i++)
		ag_free(c->users[i]);
	ag_free(c->users);
	memset(c, 0, sizeof *c);
}

void retrieval_collection_free(retrieval_collection *c)
{
	if (!c)
		return;
	collection_clear(c);
	ag_free(c);
}

void retrieval_collection_list_free(retrieval_collection_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->count; i++)
		collection_clear(&l->items[i]);
	ag_free(l->items);
	ag_free(l);
}

#define COLLECTION_COLUMNS                                                                                   \
	"col.id, col.tenant, col.name, col.description, col.created_by, col.readable_roles, "                \
	"col.readable_users, col.created_ms, (SELECT count(*) FROM documents d WHERE d.collection_id = "     \
	"col.id)"

static int collection_from_row(retrieval_collection *c, sqlite3_stmt *st)
{
	memset(c, 0, sizeof *c);
	c->id = ag_db_column_strdup(st, 0);
	c->tenant = ag_db_column_strdup(st, 1);
	c->name = ag_db_column_strdup(st, 2);
	c->description = ag_db_column_strdup(st, 3);
	c->created_by = ag_db_column_strdup(st, 4);
	c->created_ms = sqlite3_column_int64(st, 7);
	c->documents = sqlite3_column_int64(st, 8);
	if (!c->id || !c->tenant || !c->name || !c->description || !c->created_by) {
		collection_clear(c);
		return ag_error_set(AG_ENOMEM, "out of memory");
	}
	int rc = load_list(&c->roles, &c->nroles, (const char *)sqlite3_column_text(st, 5));
	if (!rc)
		rc = load_list(&c->users, &c->nusers, (const char *)sqlite3_column_text(st, 6));
	if (rc)
		collection_clear(c);
	return rc;
}

int retrieval_collection_get(retrieval_collection **out, sqlite3 *db, const retrieval_principal *p,
			     const char *name)
{
	coll_ref ref;
	int rc = retrieval_coll_resolve(&ref, db, p, name, false);
	if (rc)
		return rc;
	sqlite3_stmt *st;
	if ((rc = ag_db_prepare(db, &st,
				"SELECT " COLLECTION_COLUMNS " FROM collections col WHERE col.id = ?1")))
		return rc;
	ag_db_bind_text(st, 1, ref.id);
	int s = sqlite3_step(st);
	retrieval_collection *c = NULL;
	if (s != SQLITE_ROW) {
		rc = s == SQLITE_DONE ? ag_error_set(AG_ENOTFOUND, "no collection '%s'", name)
				      : ag_db_error(db, s, "reading a collection");
	} else if (!(c = ag_malloc(sizeof *c))) {
		rc = ag_error_set(AG_ENOMEM, "out of memory");
	} else if ((rc = collection_from_row(c, st))) {
		ag_free(c);
		c = NULL;
	}
	sqlite3_finalize(st);
	*out = c;
	return rc;
}

int retrieval_collection_create(retrieval_collection **out, sqlite3 *db, const retrieval_principal *p,
				const char *name, const char *description, const char *const *roles_in,
				size_t nroles, const char *const *users, size_t nusers)
{
	int rc = retrieval_check_principal(p);
	if (rc)
		return rc;
	if (!may_write(p))
		return ag_error_set(AG_EDENIED, "role %s may not create collections", p->role);
	if (!name_valid(name))
		return ag_error_set(AG_EINVAL,
				    "a collection name is 1..128 letters, digits, '-', '_' or '.'");
	if (description && strlen(description) > 4096)
		return ag_error_set(AG_EINVAL, "description longer than 4096 bytes");
	char *rj = NULL, *uj = NULL, *id = NULL;
	if ((rc = string_array(&rj, roles_in, nroles, true)) ||
	    (rc = string_array(&uj, users, nusers, false)))
		goto out;
	if (!(id = ag_new_id("col"))) {
		rc = ag_error_set(AG_ENOMEM, "out of memory");
		goto out;
	}
	sqlite3_stmt *st;
	if ((rc = ag_db_prepare(
		     db, &st,
		     "INSERT INTO collections (id, tenant, name, description, created_by, created_ms,"
		     " readable_roles, readable_users) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")))
		goto out;
	ag_db_bind_text(st, 1, id);
	ag_db_bind_text(st, 2, p->tenant);
	ag_db_bind_text(st, 3, name);
	ag_db_bind_text(st, 4, description ? description : "");
	ag_db_bind_text(st, 5, p->user);
	sqlite3_bind_int64(st, 6, ag_now_ms());
	ag_db_bind_text(st, 7, rj);
	ag_db_bind_text(st, 8, uj);
	int s = sqlite3_step(st);
	sqlite3_finalize(st);
	if (s == SQLITE_CONSTRAINT) {
		rc = ag_error_set(AG_ECONFLICT, "collection '%s' exists already", name);
		goto out;
	}
	if (s != SQLITE_DONE) {
		rc = ag_db_error(db, s, "creating a collection");
		goto out;
	}
	rc = out ? retrieval_collection_get(out, db, p, id) : 0;
out:
	ag_free(rj);
	ag_free(uj);
	ag_free(id);
	return rc;
}

int retrieval_collection_list_readable(retrieval_collection_list **out, sqlite3 *db,
				       const retrieval_principal *p)
{
	int rc = retrieval_check_principal(p);
	if (rc)
		return rc;
	sqlite3_stmt *st;
	if ((rc = ag_db_prepare(db, &st,
				"SELECT " COLLECTION_COLUMNS " FROM collections col WHERE " RETRIEVAL_ACL_SQL
				" ORDER BY col.name")))
		return rc;
	if ((rc = retrieval_acl_bind(st, p))) {
		sqlite3_finalize(st);
		return rc;
	}
	retrieval_collection_list *l = ag_calloc(1, sizeof *l);
	size_t cap = 0;
	if (!l)
		rc = ag_error_set(AG_ENOMEM, "out of memory");
	int s = SQLITE_DONE;
	while (!rc && (s = sqlite3_step(st)) == SQLITE_ROW) {
		if (l->count == cap) {
			size_t nc = cap ? cap * 2 : 8;
			retrieval_collection *n = ag_realloc(l->items, nc * sizeof *n);
			if (!n) {
				rc = ag_error_set(AG_ENOMEM, "out of memory");
				break;
			}
			l->items = n;
			cap = nc;
		}
		if ((rc = collection_from_row(&l->items[l->count], st)))
			break;
		l->count++;
	}
	if (!rc && s != SQLITE_DONE)
		rc = ag_db_error(db, s, "listing collections");
	sqlite3_finalize(st);
	if (rc) {
		retrieval_collection_list_free(l);
		return rc;
	}
	*out = l;
	return 0;
}
