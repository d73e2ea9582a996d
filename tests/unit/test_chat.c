/* test_chat.c: chat-completions requests and replies (lib/chat.c). */
#include <string.h>

#include "chat.h"
#include "json.h"
#include "testhelp.h"

static cJSON *parse(const char *s)
{
	cJSON *j = NULL;
	ft_json_parse(s, strlen(s), &j, NULL);
	return j;
}

static void test_request(void)
{
	struct ft_err err = { 0 };
	struct ft_buf b;
	ft_buf_init(&b, 1 << 20);
	cJSON *m = parse("[{\"content\": \"找一家酒店\\n\\\"ok\\\"\", \"role\": \"user\"},"
			 " {\"role\": \"system\", \"content\": \"be brief\"}]");
	struct ft_chat_params p = { .model = "qwen-plus", .temperature = 0.7, .top_p = 0.9,
				    .max_tokens = 256, .seed = 42, .has_temperature = true,
				    .has_top_p = true, .has_max_tokens = true, .has_seed = true };
	test_cond("request", ft_chat_request(&b, &p, m, &err) == 0);
	test_cond("canonical body: fixed key order, compact, non-ASCII kept",
		  strcmp(b.data, "{\"model\":\"qwen-plus\",\"messages\":[{\"role\":\"user\","
				 "\"content\":\"找一家酒店\\n\\\"ok\\\"\"},{\"role\":\"system\","
				 "\"content\":\"be brief\"}],\"temperature\":0.7,\"top_p\":0.9,"
				 "\"max_tokens\":256,\"seed\":42}") == 0);
	cJSON *back = parse(b.data);
	test_cond("the body is JSON", back != NULL);
	cJSON_Delete(back);
	ft_buf_reset(&b);
	struct ft_chat_params q = { .model = "m", .json_mode = true };
	test_cond("defaults left out, json mode", ft_chat_request(&b, &q, m, &err) == 0 &&
		  strstr(b.data, "temperature") == NULL &&
		  strstr(b.data, ",\"response_format\":{\"type\":\"json_object\"}}"));
	cJSON_Delete(m);

	static const char *const bad[] = {
		"[]", "{}", "[1]", "[{\"role\":\"user\"}]", "[{\"role\":\"robot\",\"content\":\"x\"}]",
		"[{\"role\":\"user\",\"content\":3}]", "[{\"role\":\"user\",\"content\":\"x\",\"name\":\"a\"}]",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		cJSON *x = parse(bad[i]);
		ft_buf_reset(&b);
		err = (struct ft_err){ 0 };
		test_cond("bad messages rejected", ft_chat_request(&b, &p, x, &err) == FT_E_DATA &&
							   err.msg[0]);
		cJSON_Delete(x);
	}
	ft_buf_release(&b);
}

static void test_reply(void)
{
	struct ft_err err = { 0 };
	struct ft_chat_reply r;
	static const char ok[] =
		"{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"model\":\"qwen-plus\","
		"\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
		"\"找一家能打国际长途的酒店\"},\"finish_reason\":\"stop\"}],"
		"\"usage\":{\"prompt_tokens\":31,\"completion_tokens\":12,\"total_tokens\":43}}";
	test_cond("reply parses", ft_chat_parse_reply(ok, sizeof ok - 1, &r, &err) == 0);
	test_cond("content, finish reason, model, usage",
		  strcmp(r.content, "找一家能打国际长途的酒店") == 0 &&
			  r.content_len == strlen("找一家能打国际长途的酒店") &&
			  strcmp(r.finish_reason, "stop") == 0 && strcmp(r.model, "qwen-plus") == 0 &&
			  r.prompt_tokens == 31 && r.completion_tokens == 12);
	ft_chat_reply_release(&r);
	static const char nousage[] = "{\"choices\":[{\"message\":{\"content\":\"\"}}]}";
	test_cond("empty content, no usage", ft_chat_parse_reply(nousage, sizeof nousage - 1, &r,
								  &err) == 0 &&
						     r.content_len == 0 && r.prompt_tokens == -1);
	ft_chat_reply_release(&r);

	static const struct {
		const char *body;
		int code;
		const char *msg;
	} bad[] = {
		{ "{\"choices\":[{\"message\":{\"content\":\"cut", FT_E_PARSE, "not JSON" },
		{ "<html>502 Bad Gateway</html>", FT_E_PARSE, "not JSON" },
		{ "[1,2]", FT_E_DATA, "not a JSON object" },
		{ "{\"choices\":[]}", FT_E_DATA, "no choices" },
		{ "{\"choices\":[{\"message\":{\"content\":null}}]}", FT_E_DATA, "no text content" },
		{ "{\"choices\":[{\"message\":{\"tool_calls\":[]}}]}", FT_E_DATA, "no text content" },
		{ "{\"error\":{\"message\":\"Rate limit reached\",\"type\":\"requests\"}}", FT_E_DATA,
		  "Rate limit reached" },
		{ "{\"choices\":[{\"message\":{\"content\":\"x\"}}],\"usage\":{\"prompt_tokens\":-5}}", 0,
		  "" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		err = (struct ft_err){ 0 };
		int rc = ft_chat_parse_reply(bad[i].body, strlen(bad[i].body), &r, &err);
		char descr[200];
		snprintf(descr, sizeof descr, "bad reply %zu: %d '%s'", i, bad[i].code, bad[i].msg);
		test_cond(descr, rc == bad[i].code && strstr(err.msg, bad[i].msg) &&
					 (rc || r.prompt_tokens == -1));
		ft_chat_reply_release(&r);
	}
}

static void test_excerpt(void)
{
	char out[16];
	static const char errbody[] = "{\"error\":{\"message\":\"bad\\nkey\"}}";
	ft_chat_error_excerpt(errbody, sizeof errbody - 1, out, sizeof out);
	test_cond("error.message, control bytes escaped", strcmp(out, "bad\\x0akey") == 0);
	ft_chat_error_excerpt("酒店酒店酒店酒店", strlen("酒店酒店酒店酒店"), out, sizeof out);
	test_cond("cut on a character boundary", strcmp(out, "酒店酒店酒") == 0);
	ft_chat_error_excerpt("plain text", 10, out, 4);
	test_cond("bounded", strcmp(out, "pla") == 0);
}

static void test_estimate(void)
{
	cJSON *m = parse("[{\"role\":\"user\",\"content\":\"abcdefgh\"},"
			 "{\"role\":\"user\",\"content\":\"找酒店\"}]");
	test_cond("estimate: 2 ASCII tokens + 3 CJK + 8 framing",
		  ft_chat_estimate_tokens(m) == 2 + 3 + 8);
	cJSON_Delete(m);
}

int main(void)
{
	test_request();
	test_reply();
	test_excerpt();
	test_estimate();
	return test_report();
}
