/*
 * Argument validation against the subset of JSON Schema tool schemas use:
 * type (object, string, integer, number, boolean, array), properties,
 * required, additionalProperties: false, enum, minimum, maximum, minLength,
 * maxLength (in characters), items and maxItems. The same subset is what the
 * engine's constrained decoder understands, so tools_schema_check refuses any
 * other keyword instead of silently ignoring it. jansson holds the JSON.
 */
#include "tools/tools.h"

#include <math.h>
#include <string.h>

#define MAX_DEPTH 16

/* Keeps the JSON path of the value under test for messages ("arguments.rows[2]"). */
typedef struct path {
	char text[256];
	size_t len;
} path;

static size_t path_push_key(path *p, const char *key)
{
	size_t old = p->len;
	int n = snprintf(p->text + p->len, sizeof p->text - p->len, ".%s", key);
	if (n > 0)
		p->len += (size_t)n < sizeof p->text - p->len ? (size_t)n : sizeof p->text - p->len - 1;
	return old;
}

static size_t path_push_index(path *p, size_t i)
{
	size_t old = p->len;
	int n = snprintf(p->text + p->len, sizeof p->text - p->len, "[%zu]", i);
	if (n > 0)
		p->len += (size_t)n < sizeof p->text - p->len ? (size_t)n : sizeof p->text - p->len - 1;
	return old;
}

static void path_pop(path *p, size_t old)
{
	p->len = old;
	p->text[old] = '\0';
}

static const char *type_of(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "an object";
	case JSON_ARRAY: return "an array";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

static bool type_matches(const char *type, const json_t *v)
{
	if (strcmp(type, "object") == 0)
		return json_is_object(v);
	if (strcmp(type, "array") == 0)
		return json_is_array(v);
	if (strcmp(type, "string") == 0)
		return json_is_string(v);
	if (strcmp(type, "integer") == 0)
		return json_is_integer(v) ||
		       (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
			fabs(json_real_value(v)) < 9007199254740992.0);
	if (strcmp(type, "number") == 0)
		return json_is_number(v);
	if (strcmp(type, "boolean") == 0)
		return json_is_boolean(v);
	return false;
}

/* Characters, not bytes: the model and people count characters. */
static size_t utf8_length(const char *s, size_t n)
{
	size_t count = 0;
	for (size_t i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			count++;
	return count;
}

static int validate(const json_t *schema, const json_t *v, path *p, int depth)
{
	if (depth > MAX_DEPTH)
		return ag_error_set(AG_ELIMIT, "%s: nested too deeply", p->text);
	const char *type = json_string_value(json_object_get(schema, "type"));
	if (type && !type_matches(type, v))
		return ag_error_set(AG_EINVAL, "%s: expected %s%s, got %s", p->text,
				    strcmp(type, "integer") == 0 || strcmp(type, "array") == 0 ||
						    strcmp(type, "object") == 0
					    ? "an "
					    : "a ",
				    type, type_of(v));

	const json_t *en = json_object_get(schema, "enum");
	if (json_is_array(en)) {
		size_t i;
		const json_t *e;
		bool found = false;
		json_array_foreach(en, i, e) if (json_equal(e, v)) found = true;
		if (!found) {
			char *list = NULL;
			size_t n;
			ag_json_dump(&list, &n, en);
			int rc = ag_error_set(AG_EINVAL, "%s: must be one of %s", p->text,
					      list ? list : "the enum");
			ag_free(list);
			return rc;
		}
	}

	if (json_is_number(v)) {
		double x = json_number_value(v);
		const json_t *mn = json_object_get(schema, "minimum"),
			     *mx = json_object_get(schema, "maximum");
		if (json_is_number(mn) && x < json_number_value(mn))
			return ag_error_set(AG_EINVAL, "%s: must be at least %g", p->text,
					    json_number_value(mn));
		if (json_is_number(mx) && x > json_number_value(mx))
			return ag_error_set(AG_EINVAL, "%s: must be at most %g", p->text,
					    json_number_value(mx));
	}

	if (json_is_string(v)) {
		size_t n = utf8_length(json_string_value(v), json_string_length(v));
		const json_t *mn = json_object_get(schema, "minLength"),
			     *mx = json_object_get(schema, "maxLength");
		if (json_is_integer(mn) && (json_int_t)n < json_integer_value(mn))
			return ag_error_set(AG_EINVAL, "%s: must be at least %lld characters", p->text,
					    (long long)json_integer_value(mn));
		if (json_is_integer(mx) && (json_int_t)n > json_integer_value(mx))
			return ag_error_set(AG_EINVAL, "%s: must be at most %lld characters", p->text,
					    (long long)json_integer_value(mx));
	}

	if (json_is_array(v)) {
		const json_t *mx = json_object_get(schema, "maxItems");
		if (json_is_integer(mx) && (json_int_t)json_array_size(v) > json_integer_value(mx))
			return ag_error_set(AG_EINVAL, "%s: at most %lld items allowed", p->text,
					    (long long)json_integer_value(mx));
		const json_t *items = json_object_get(schema, "items");
		if (json_is_object(items)) {
			size_t i;
			const json_t *e;
			json_array_foreach(v, i, e)
			{
				size_t old = path_push_index(p, i);
				int rc = validate(items, e, p, depth + 1);
				if (rc)
					return rc;
				path_pop(p, old);
			}
		}
	}

	if (json_is_object(v)) {
		const json_t *props = json_object_get(schema, "properties");
		const json_t *req = json_object_get(schema, "required");
		size_t i;
		const json_t *r;
		json_array_foreach(req, i, r)
		{
			if (json_is_string(r) && !json_object_get(v, json_string_value(r)))
				return ag_error_set(AG_EINVAL, "%s: missing required field '%s'", p->text,
						    json_string_value(r));
		}
		const char *key;
		const json_t *field;
		bool closed = json_is_false(json_object_get(schema, "additionalProperties"));
		json_object_foreach((json_t *)v, key, field)
		{
			const json_t *sub = json_object_get(props, key);
			if (!sub) {
				if (closed)
					return ag_error_set(AG_EINVAL, "%s: unknown field '%s'", p->text,
							    key);
				continue;
			}
			size_t old = path_push_key(p, key);
			int rc = validate(sub, field, p, depth + 1);
			if (rc)
				return rc;
			path_pop(p, old);
		}
	}
	return 0;
}

int tools_schema_validate(const json_t *schema, const json_t *value)
{
	if (!json_is_object(schema))
		return ag_error_set(AG_EINVAL, "schema is not an object");
	path p = {.text = "arguments", .len = 9};
	return validate(schema, value, &p, 0);
}

static const char *const known_types[] = {"object", "string", "integer", "number", "boolean", "array", NULL};

static int check(const json_t *s, path *p, int depth)
{
	if (depth > MAX_DEPTH)
		return ag_error_set(AG_ELIMIT, "schema%s: nested too deeply", p->text);
	if (!json_is_object(s))
		return ag_error_set(AG_EINVAL, "schema%s: a schema must be an object", p->text);
	const char *key;
	const json_t *v;
	json_object_foreach((json_t *)s, key, v)
	{
		if (strcmp(key, "type") == 0) {
			bool ok = false;
			for (int i = 0; known_types[i]; i++)
				if (json_is_string(v) && strcmp(json_string_value(v), known_types[i]) == 0)
					ok = true;
			if (!ok)
				return ag_error_set(AG_EINVAL, "schema%s: unsupported type", p->text);
		} else if (strcmp(key, "description") == 0) {
			if (!json_is_string(v))
				return ag_error_set(AG_EINVAL, "schema%s: description must be a string",
						    p->text);
		} else if (strcmp(key, "properties") == 0) {
			if (!json_is_object(v))
				return ag_error_set(AG_EINVAL, "schema%s: properties must be an object",
						    p->text);
			const char *name;
			const json_t *sub;
			json_object_foreach((json_t *)v, name, sub)
			{
				size_t old = path_push_key(p, name);
				int rc = check(sub, p, depth + 1);
				if (rc)
					return rc;
				path_pop(p, old);
			}
		} else if (strcmp(key, "items") == 0) {
			size_t old = path_push_key(p, "items");
			int rc = check(v, p, depth + 1);
			if (rc)
				return rc;
			path_pop(p, old);
		} else if (strcmp(key, "required") == 0) {
			size_t i;
			const json_t *r;
			if (!json_is_array(v))
				return ag_error_set(AG_EINVAL, "schema%s: required must be an array",
						    p->text);
			json_array_foreach(v, i, r) if (!json_is_string(r)) return ag_error_set(
				AG_EINVAL, "schema%s: required holds a non-string", p->text);
		} else if (strcmp(key, "additionalProperties") == 0) {
			if (!json_is_false(v))
				return ag_error_set(AG_EINVAL, "schema%s: additionalProperties must be false",
						    p->text);
		} else if (strcmp(key, "enum") == 0) {
			if (!json_is_array(v) || json_array_size(v) == 0)
				return ag_error_set(AG_EINVAL, "schema%s: enum must be a non-empty array",
						    p->text);
		} else if (strcmp(key, "minimum") == 0 || strcmp(key, "maximum") == 0) {
			if (!json_is_number(v))
				return ag_error_set(AG_EINVAL, "schema%s: %s must be a number", p->text, key);
		} else if (strcmp(key, "minLength") == 0 || strcmp(key, "maxLength") == 0 ||
			   strcmp(key, "maxItems") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) < 0)
				return ag_error_set(AG_EINVAL, "schema%s: %s must be a non-negative integer",
						    p->text, key);
		} else {
			return ag_error_set(AG_EINVAL, "schema%s: unsupported keyword '%s'", p->text, key);
		}
	}
	return 0;
}

int tools_schema_check(const json_t *schema)
{
	path p = {.text = "", .len = 0};
	int rc = check(schema, &p, 0);
	if (rc)
		return rc;
	if (!json_is_string(json_object_get(schema, "type")) ||
	    strcmp(json_string_value(json_object_get(schema, "type")), "object") != 0)
		return ag_error_set(AG_EINVAL, "schema: a tool's arguments must be an object");
	return 0;
}
