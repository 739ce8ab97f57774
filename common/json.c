/* JSON helpers over jansson: parsing with positioned errors and typed field access. */
#include "common.h"

#include <string.h>

int ag_json_parse(json_t **out, const char *text, size_t len)
{
	json_error_t err;
	memset(&err, 0, sizeof err);
	*out = NULL;
	long failures = ag_alloc_thread_failures();
	json_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
	if (!v) {
		/* jansson often reports an allocation failure as a syntax error: ask the gate. */
		if (json_error_code(&err) == json_error_out_of_memory ||
		    ag_alloc_thread_failures() != failures)
			return ag_error_set(AG_ENOMEM, "out of memory parsing JSON");
		return ag_error_set(AG_EINVAL, "invalid JSON at line %d, column %d: %s", err.line, err.column,
				    err.text);
	}
	*out = v;
	return 0;
}

int ag_json_dump(char **out, size_t *len_out, const json_t *v)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!s)
		return ag_error_set(AG_ENOMEM, "out of memory serialising JSON");
	*out = s; /* jansson allocates through the gate, so ag_free releases it */
	if (len_out)
		*len_out = strlen(s);
	return 0;
}

static int get_field(const json_t *obj, const char *key, bool required, json_t **v)
{
	if (!json_is_object(obj))
		return ag_error_set(AG_EINVAL, "expected a JSON object");
	*v = json_object_get(obj, key);
	if (!*v || json_is_null(*v)) {
		*v = NULL;
		if (required)
			return ag_error_set(AG_EINVAL, "missing field '%s'", key);
	}
	return 0;
}

int ag_json_get_string(const json_t *obj, const char *key, bool required, const char **out)
{
	json_t *v;
	int rc = get_field(obj, key, required, &v);
	if (rc || !v)
		return rc;
	if (!json_is_string(v))
		return ag_error_set(AG_EINVAL, "field '%s' must be a string", key);
	*out = json_string_value(v);
	return 0;
}

int ag_json_get_int(const json_t *obj, const char *key, bool required, long long *out)
{
	json_t *v;
	int rc = get_field(obj, key, required, &v);
	if (rc || !v)
		return rc;
	if (!json_is_integer(v))
		return ag_error_set(AG_EINVAL, "field '%s' must be an integer", key);
	*out = json_integer_value(v);
	return 0;
}

int ag_json_get_number(const json_t *obj, const char *key, bool required, double *out)
{
	json_t *v;
	int rc = get_field(obj, key, required, &v);
	if (rc || !v)
		return rc;
	if (!json_is_number(v))
		return ag_error_set(AG_EINVAL, "field '%s' must be a number", key);
	*out = json_number_value(v);
	return 0;
}

int ag_json_get_bool(const json_t *obj, const char *key, bool required, bool *out)
{
	json_t *v;
	int rc = get_field(obj, key, required, &v);
	if (rc || !v)
		return rc;
	if (!json_is_boolean(v))
		return ag_error_set(AG_EINVAL, "field '%s' must be true or false", key);
	*out = json_is_true(v);
	return 0;
}

int ag_json_get_array(const json_t *obj, const char *key, bool required, json_t **out)
{
	json_t *v;
	int rc = get_field(obj, key, required, &v);
	if (rc || !v)
		return rc;
	if (!json_is_array(v))
		return ag_error_set(AG_EINVAL, "field '%s' must be an array", key);
	*out = v;
	return 0;
}

int ag_json_get_object(const json_t *obj, const char *key, bool required, json_t **out)
{
	json_t *v;
	int rc = get_field(obj, key, required, &v);
	if (rc || !v)
		return rc;
	if (!json_is_object(v))
		return ag_error_set(AG_EINVAL, "field '%s' must be an object", key);
	*out = v;
	return 0;
}

int ag_json_check_keys(const json_t *obj, const char *const *allowed)
{
	const char *key;
	json_t *v;
	if (!json_is_object(obj))
		return ag_error_set(AG_EINVAL, "expected a JSON object");
	json_object_foreach((json_t *)obj, key, v)
	{
		bool ok = false;
		for (const char *const *a = allowed; *a; a++)
			if (strcmp(*a, key) == 0)
				ok = true;
		if (!ok)
			return ag_error_set(AG_EINVAL, "unknown field '%s'", key);
	}
	return 0;
}
