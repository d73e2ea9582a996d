/* jinja-render: a test driver for lib/jinja. Reads JSONL cases
 *   {"id": ..., "template": "...", "vars": {...}, "literals": {...}}
 * and writes one JSON line per case:
 *   {"id": ..., "ok": true, "text": "...", "spans": [[off, len, flags], ...]}
 *   {"id": ..., "ok": false, "phase": "compile"|"render", "error": "..."}
 * ("template_hex": the template's bytes in hex, for bytes JSON cannot carry:
 * NUL, invalid UTF-8). Each key of "vars" is bound as JSON data (ft_tpl_vars_json); each string of
 * "literals" as template text (ft_tpl_vars_str, FT_TPL_LITERAL), the way
 * ft-template binds bos_token. Span offsets and lengths are in bytes; flags
 * are FT_SPAN_DATA (1) and FT_SPAN_TRAIN (2). Exit status 0 unless the input
 * itself is broken; a case that fails to compile or render is data. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "jinja.h"
#include "json.h"

static int write_result(struct ft_buf *b, const cJSON *id, const struct ft_render *r,
			const char *phase, const struct ft_err *err)
{
	int rc = ft_buf_puts(b, "{\"id\":");
	if (!rc)
		rc = id ? ft_json_write(b, id) : ft_buf_puts(b, "null");
	if (phase) {
		if (!rc)
			rc = ft_buf_printf(b, ",\"ok\":false,\"phase\":\"%s\",\"error\":", phase);
		if (!rc)
			rc = ft_json_write_string(b, err->msg, strlen(err->msg));
		if (!rc)
			rc = ft_buf_printf(b, ",\"line\":%ld", err->line);
		return rc ? rc : ft_buf_puts(b, "}\n");
	}
	if (!rc)
		rc = ft_buf_puts(b, ",\"ok\":true,\"text\":");
	if (!rc)
		rc = ft_json_write_string(b, r->text.data ? r->text.data : "", r->text.len);
	if (!rc)
		rc = ft_buf_puts(b, ",\"spans\":[");
	for (size_t i = 0; i < r->nspans && !rc; i++)
		rc = ft_buf_printf(b, "%s[%zu,%zu,%u]", i ? "," : "", r->spans[i].off, r->spans[i].len,
				   r->spans[i].flags);
	return rc ? rc : ft_buf_puts(b, "]}\n");
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
	       c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

static int run_case(struct ft_buf *b, const cJSON *c, struct ft_tpl_vars *vars,
		    struct ft_render *r)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(c, "id");
	const cJSON *src = cJSON_GetObjectItemCaseSensitive(c, "template");
	const cJSON *hex = cJSON_GetObjectItemCaseSensitive(c, "template_hex");
	const cJSON *vs = cJSON_GetObjectItemCaseSensitive(c, "vars");
	const cJSON *lits = cJSON_GetObjectItemCaseSensitive(c, "literals");
	char *bytes = NULL;
	size_t len = 0;
	if (cJSON_IsString(hex)) {
		size_t n = strlen(hex->valuestring) / 2;
		bytes = malloc(n + 1);
		if (!bytes)
			return -1;
		for (size_t i = 0; i < n; i++) {
			int hi = hexval(hex->valuestring[2 * i]), lo = hexval(hex->valuestring[2 * i + 1]);
			if (hi < 0 || lo < 0) {
				free(bytes);
				fprintf(stderr, "jinja-render: bad 'template_hex'\n");
				return -1;
			}
			bytes[len++] = (char)(hi * 16 + lo);
		}
	} else if (!cJSON_IsString(src)) {
		fprintf(stderr, "jinja-render: a case without a 'template' string\n");
		return -1;
	}
	struct ft_err err;
	ft_err_clear(&err);
	struct ft_tpl *tpl;
	int crc = bytes ? ft_tpl_compile(&tpl, "case", bytes, len, &err) :
			  ft_tpl_compile(&tpl, "case", src->valuestring, strlen(src->valuestring), &err);
	free(bytes);
	if (crc)
		return write_result(b, id, NULL, "compile", &err);
	ft_tpl_vars_clear(vars);
	int rc = 0;
	for (const cJSON *v = vs ? vs->child : NULL; v && !rc; v = v->next)
		rc = ft_tpl_vars_json(vars, v->string, v);
	for (const cJSON *v = lits ? lits->child : NULL; v && !rc; v = v->next)
		if (cJSON_IsString(v))
			rc = ft_tpl_vars_str(vars, v->string, v->valuestring, FT_TPL_LITERAL);
	if (rc) {
		ft_tpl_free(tpl);
		return rc;
	}
	ft_render_reset(r);
	ft_err_clear(&err);
	if (ft_tpl_render(tpl, vars, r, &err))
		rc = write_result(b, id, NULL, "render", &err);
	else
		rc = write_result(b, id, r, NULL, NULL);
	ft_tpl_free(tpl);
	return rc;
}

int main(int argc, char **argv)
{
	FILE *in = stdin;
	if (argc > 1 && strcmp(argv[1], "-") && !(in = fopen(argv[1], "rb"))) {
		perror(argv[1]);
		return 2;
	}
	struct ft_tpl_vars *vars = ft_tpl_vars_new();
	struct ft_render r;
	ft_render_init(&r);
	struct ft_buf b;
	ft_buf_init(&b, 0);
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	long lineno = 0;
	int status = 0;
	while (vars && (n = getline(&line, &cap, in)) > 0) {
		lineno++;
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			n--;
		if (!n)
			continue;
		cJSON *c = NULL;
		struct ft_err err;
		ft_err_clear(&err);
		if (ft_json_parse(line, (size_t)n, &c, &err) || !cJSON_IsObject(c)) {
			fprintf(stderr, "jinja-render: line %ld: bad JSON: %s\n", lineno, err.msg);
			cJSON_Delete(c);
			status = 1;
			break;
		}
		ft_buf_reset(&b);
		int rc = run_case(&b, c, vars, &r);
		cJSON_Delete(c);
		if (rc) {
			fprintf(stderr, "jinja-render: line %ld: cannot run this case\n", lineno);
			status = 1;
			break;
		}
		if (fwrite(b.data, 1, b.len, stdout) != b.len) {
			status = 1;
			break;
		}
	}
	if (!vars)
		status = 1;
	free(line);
	ft_buf_release(&b);
	ft_render_release(&r);
	ft_tpl_vars_free(vars);
	if (in != stdin)
		fclose(in);
	if (fflush(stdout) || ferror(stdout))
		status = 1;
	return status;
}
