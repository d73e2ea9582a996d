/* chat.h: the OpenAI chat-completions wire format, both directions, for
 * ft-augment (and anything else that talks to an OpenAI-compatible server:
 * OpenAI, DeepSeek, DashScope's compatible mode, Moonshot, vLLM, Ollama,
 * llama.cpp's server).
 *
 * ft_chat_request writes the request body in one canonical form (fixed key
 * order, compact, numbers in shortest round-trip form), so equal inputs give
 * equal bytes: the body is also what the completion cache is keyed on.
 * ft_chat_parse_reply reads a server's reply defensively: bounded JSON,
 * every field type-checked, nothing taken on trust. Messages of errors quote
 * at most a short, escaped excerpt of what the server said. Nothing here
 * sees the API key. Errors: 0 or FT_E_* with err set. */
#ifndef FT_CHAT_H
#define FT_CHAT_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "buf.h"
#include "ft.h"

/* Sampling parameters; a has_* flag off leaves the field out (the
 * server's default). */
struct ft_chat_params {
	const char *model;
	double temperature, top_p;
	long max_tokens;
	long long seed;
	bool has_temperature, has_top_p, has_max_tokens, has_seed;
	bool json_mode;         /* response_format {"type": "json_object"} */
};

/* Check messages: a non-empty array of {"role": system|user|assistant,
 * "content": string} (other keys are an error: they would change what is
 * sent without the cache key knowing). */
int ft_chat_check_messages(const cJSON *messages, struct ft_err *err);

/* The request body, appended to out. */
int ft_chat_request(struct ft_buf *out, const struct ft_chat_params *p, const cJSON *messages,
		    struct ft_err *err);

struct ft_chat_reply {
	char *content;           /* the first choice's message content, NUL-terminated */
	size_t content_len;
	char finish_reason[32];  /* "stop", "length", ... or "" */
	char model[128];         /* the model the server says answered, or "" */
	long prompt_tokens, completion_tokens;   /* -1 when the server did not say */
};

/* Parse a 2xx body. FT_E_PARSE: not JSON; FT_E_DATA: JSON without a usable
 * first choice (an error object, no choices, content not a string). */
int ft_chat_parse_reply(const char *body, size_t len, struct ft_chat_reply *r,
			struct ft_err *err);
void ft_chat_reply_release(struct ft_chat_reply *r);

/* A printable excerpt of an error reply: error.message when the body is an
 * OpenAI error object, else the body's start; control characters escaped,
 * at most size-1 bytes (cut on a UTF-8 boundary). */
void ft_chat_error_excerpt(const char *body, size_t len, char *out, size_t size);

/* A token count estimate for rate limiting before the server counts: one
 * token per 4 bytes of ASCII, one per CJK or other non-ASCII character
 * (what BPE vocabularies of current chat models give within a factor of
 * about 1.5), plus 4 per message for the chat framing. */
long ft_chat_estimate_tokens(const cJSON *messages);

#endif
