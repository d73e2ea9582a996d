/* Unit tests for lib/json.c: parsing edge cases, number literals, writers. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "testhelp.h"

static char *compact(const char *text)
{
	static char out[4096];
	cJSON *v;
	struct ft_err err = { 0 };
	if (ft_json_parse(text, strlen(text), &v, &err))
		return strcpy(out, "ERR");
	struct ft_buf b;
	ft_buf_init(&b, 0);
	ft_json_write(&b, v);
	snprintf(out, sizeof out, "%s", b.data);
	ft_buf_release(&b);
	cJSON_Delete(v);
	return out;
}

static char *py(const char *text, int indent)
{
	static char out[4096];
	cJSON *v;
	if (ft_json_parse(text, strlen(text), &v, NULL))
		return strcpy(out, "ERR");
	struct ft_buf b;
	ft_buf_init(&b, 0);
	ft_json_write_py(&b, v, indent);
	snprintf(out, sizeof out, "%s", b.data);
	ft_buf_release(&b);
	cJSON_Delete(v);
	return out;
}

static const char *pyf(double d)
{
	static char out[32];
	ft_fmt_pyfloat(d, out);
	return out;
}

int main(void)
{
	struct ft_err err = { 0 };
	cJSON *v;

	test_cond("compact keeps int and float literals",
		  !strcmp(compact("{\"a\": 1, \"b\": 4.0, \"c\": [1.5, -0, 2e3]}"),
			  "{\"a\":1,\"b\":4.0,\"c\":[1.5,0,2000.0]}"));
	test_cond("big integers survive exactly",
		  !strcmp(compact("[12345678901234567890, -9007199254740993]"),
			  "[12345678901234567890,-9007199254740993]"));
	test_cond("non-ASCII kept, controls escaped",
		  !strcmp(compact("\"酒店\\u0001\\n\\\"\""), "\"酒店\\u0001\\n\\\"\""));
	test_cond("trailing data is an error",
		  ft_json_parse("{} x", 4, &v, &err) == FT_E_PARSE && err.col == 4);
	test_cond("truncated JSON is an error", ft_json_parse("{\"a\":", 5, &v, &err) == FT_E_PARSE);
	test_cond("NUL byte is an error",
		  ft_json_parse("\"a\0b\"", 5, &v, &err) == FT_E_PARSE && err.col == 3);
	test_cond("trailing whitespace is fine", ft_json_parse("[1] \r\n", 6, &v, &err) == 0);
	cJSON_Delete(v);
	test_cond("strings with digits do not confuse literal matching",
		  !strcmp(compact("{\"1.5\": \"2e3\", \"x\": [\"-1\", 7, \"\\\"3\"], \"y\": 8.25}"),
			  "{\"1.5\":\"2e3\",\"x\":[\"-1\",7,\"\\\"3\"],\"y\":8.25}"));

	test_cond("py indent=4 matches json.dumps",
		  !strcmp(py("{\"a\": [1, 2.0], \"b\": {}, \"c\": [], \"d\": null}", 4),
			  "{\n    \"a\": [\n        1,\n        2.0\n    ],\n    \"b\": {},\n"
			  "    \"c\": [],\n    \"d\": null\n}"));
	test_cond("py without indent uses ', ' and ': '",
		  !strcmp(py("{\"a\": [1, true], \"b\": \"酒\"}", -1), "{\"a\": [1, true], \"b\": \"酒\"}"));
	test_cond("py indent=0 puts newlines only", !strcmp(py("[1,2]", 0), "[\n1,\n2\n]"));

	test_cond("repr 4.0", !strcmp(pyf(4.0), "4.0"));
	test_cond("repr 0.1", !strcmp(pyf(0.1), "0.1"));
	test_cond("repr 446.5", !strcmp(pyf(446.5), "446.5"));
	test_cond("repr 1e16", !strcmp(pyf(1e16), "1e+16"));
	test_cond("repr 1e15", !strcmp(pyf(1e15), "1000000000000000.0"));
	test_cond("repr 1e-05", !strcmp(pyf(1e-5), "1e-05"));
	test_cond("repr 0.0001", !strcmp(pyf(0.0001), "0.0001"));
	test_cond("repr 1/3", !strcmp(pyf(1.0 / 3), "0.3333333333333333"));
	test_cond("repr 0.1+0.2", !strcmp(pyf(0.1 + 0.2), "0.30000000000000004"));
	test_cond("repr -2.5e-300", !strcmp(pyf(-2.5e-300), "-2.5e-300"));
	test_cond("repr 123456789.123", !strcmp(pyf(123456789.123), "123456789.123"));
	test_cond("repr -0.0", !strcmp(pyf(-0.0), "-0.0"));
	test_cond("repr inf", !strcmp(pyf(INFINITY), "inf"));
	test_cond("repr 1.7976931348623157e+308", !strcmp(pyf(1.7976931348623157e308), "1.7976931348623157e+308"));

	const char *doc = "{\"a\": {\"b\": [10, {\"c\": \"x\"}]}}";
	ft_json_parse(doc, strlen(doc), &v, NULL);
	const cJSON *c = ft_json_path(v, "a.b.1.c");
	test_cond("dotted path", c && cJSON_IsString(c) && !strcmp(c->valuestring, "x"));
	test_cond("dotted path miss", !ft_json_path(v, "a.z"));
	test_cond("dotted path int", ft_json_int(ft_json_path(v, "a.b.0")) == 10);
	cJSON_Delete(v);
	return test_report();
}
