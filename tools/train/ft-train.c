/* ft-train: the trainer's command line. Subcommands:
 *   init   write a randomly initialised Hugging Face model directory
 *          (config.json + model.safetensors) from a config.json or a preset.
 * Training itself (`ft-train train`) comes next; each subcommand is one
 * function taking its own argv. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "cli.h"
#include "model.h"
#include "out.h"

static const char usage_text[] =
"Usage: ft-train COMMAND [OPTION]...\n"
"Train Llama-family models (Llama, Mistral, Qwen2) on ft shards.\n"
"\n"
"Commands:\n"
"  init      write a randomly initialised model directory\n"
"\n"
"Run 'ft-train COMMAND --help' for a command's options.\n"
"  -h, --help     show this help and exit\n"
"      --version  show the version and exit\n"
"\n"
"Exit status: 0 success, 1 bad input or write error, 2 usage error.\n";

static const char init_usage[] =
"Usage: ft-train init (--config FILE | --preset NAME) -o DIR [OPTION]...\n"
"Write DIR/config.json and DIR/model.safetensors: a model with Hugging Face's\n"
"initialisation (matrices normal(0, initializer_range), biases 0, norms 1).\n"
"\n"
"  -c, --config=FILE     a config.json (LlamaForCausalLM, MistralForCausalLM,\n"
"                        Qwen2ForCausalLM), copied to DIR as it is\n"
"  -p, --preset=NAME     tiny (2 layers, hidden 128) or small (8 layers,\n"
"                        hidden 512), Llama with grouped-query attention\n"
"      --vocab-size=N    vocabulary size for a preset (default 32000)\n"
"  -o, --output=DIR      the model directory (created if missing)\n"
"  -s, --seed=N          random seed (default 0)\n"
"      --dtype=TYPE      f32, bf16 or f16 weights (default f32)\n"
"  -f, --force           replace an existing model in DIR\n"
"  -h, --help            show this help and exit\n";

enum { OPT_VERSION = 256, OPT_VOCAB, OPT_DTYPE };

static bool exists(const char *dir, const char *name)
{
	char path[4096];
	struct stat st;
	snprintf(path, sizeof path, "%s/%s", dir, name);
	return stat(path, &st) == 0;
}

static int cmd_init(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "preset", required_argument, NULL, 'p' },
		{ "vocab-size", required_argument, NULL, OPT_VOCAB },
		{ "output", required_argument, NULL, 'o' },
		{ "seed", required_argument, NULL, 's' },
		{ "dtype", required_argument, NULL, OPT_DTYPE },
		{ "force", no_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL, *preset = NULL, *outdir = NULL;
	long vocab = 0, seed = 0;
	bool force = false;
	enum ft_dtype dtype = FT_DT_F32;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "c:p:o:s:fh", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config = optarg; break;
		case 'p': preset = optarg; break;
		case OPT_VOCAB: vocab = ft_opt_long("--vocab-size", optarg, 1, 1 << 24); break;
		case 'o': outdir = optarg; break;
		case 's': seed = ft_opt_long("--seed", optarg, 0, 0x7fffffffffffffffL); break;
		case 'f': force = true; break;
		case OPT_DTYPE:
			if (strcmp(optarg, "f32") == 0 || strcmp(optarg, "fp32") == 0)
				dtype = FT_DT_F32;
			else if (strcmp(optarg, "bf16") == 0)
				dtype = FT_DT_BF16;
			else if (strcmp(optarg, "f16") == 0 || strcmp(optarg, "fp16") == 0)
				dtype = FT_DT_F16;
			else
				ft_usage_error("invalid --dtype '%s' (f32, bf16, f16)", optarg);
			break;
		case 'h':
			fputs(init_usage, stdout);
			ft_close_stdout();
			return FT_EXIT_OK;
		default:
			ft_usage_error("init: bad option");
		}
	}
	if (optind < argc)
		ft_usage_error("init: unexpected argument '%s'", argv[optind]);
	if (!config == !preset)
		ft_usage_error("init: give exactly one of --config and --preset");
	if (!outdir)
		ft_usage_error("init: missing -o DIR");
	if (vocab && !preset)
		ft_usage_error("init: --vocab-size goes with --preset");

	struct ft_err err = { 0 };
	struct ft_model_config cfg;
	struct ft_buf text;
	ft_buf_init(&text, 1 << 20);
	if (config) {
		/* read once: parsed here, copied as it is into the model directory */
		if (ft_buf_read_file(&text, config, &err))
			ft_die(FT_EXIT_DATA, "%s", err.msg);
		if (ft_model_config_parse(&cfg, text.data ? text.data : "", text.len, &err))
			ft_die(FT_EXIT_DATA, "'%s': %s", config, err.msg);
	} else {
		if (ft_model_config_preset(&cfg, preset, &err))
			ft_usage_error("%s", err.msg);
		if (vocab)
			cfg.vocab_size = (int)vocab;
		if (ft_model_config_write(&cfg, &text))
			ft_die(FT_EXIT_DATA, "out of memory");
	}
	if (cfg.warning[0])
		ft_warn("warning: %s", cfg.warning);

	if (mkdir(outdir, 0777) != 0 && errno != EEXIST)
		ft_die(FT_EXIT_DATA, "cannot create '%s': %s", outdir, strerror(errno));
	if (!force && (exists(outdir, "config.json") || exists(outdir, "model.safetensors") ||
		       exists(outdir, "model.safetensors.index.json")))
		ft_die(FT_EXIT_DATA, "'%s' already holds a model (--force replaces it)", outdir);

	struct ft_model model;
	if (ft_model_init(&model, &cfg, &err))
		ft_die(FT_EXIT_DATA, "%s", err.msg);
	ft_model_init_random(&model, (uint64_t)seed);

	char path[4096];
	if (snprintf(path, sizeof path, "%s/model.safetensors", outdir) >= (int)sizeof path)
		ft_die(FT_EXIT_USAGE, "output path too long");
	if (ft_model_save_weights(&model, path, dtype, &err))
		ft_die(FT_EXIT_DATA, "%s", err.msg);
	snprintf(path, sizeof path, "%s/config.json", outdir);
	struct ft_out *o;
	if (ft_out_open(&o, path, &err))
		ft_die(FT_EXIT_DATA, "%s", err.msg);
	ft_out_write(o, text.data, text.len);
	if (ft_out_commit(o, &err))
		ft_die(FT_EXIT_DATA, "%s", err.msg);
	ft_buf_release(&text);
	fprintf(stderr, "ft-train: %s: %zu parameters\n", outdir, model.nfloats);
	ft_model_release(&model);
	return FT_EXIT_OK;
}

int main(int argc, char **argv)
{
	ft_cli_init("ft-train");
	if (argc < 2)
		ft_usage_error("missing command");
	const char *cmd = argv[1];
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0) {
		fputs(usage_text, stdout);
		ft_close_stdout();
		return FT_EXIT_OK;
	}
	if (strcmp(cmd, "--version") == 0) {
		printf("ft-train %s\n", FT_VERSION);
		ft_close_stdout();
		return FT_EXIT_OK;
	}
	if (strcmp(cmd, "init") == 0)
		return cmd_init(argc - 1, argv + 1);
	ft_usage_error("unknown command '%s'", cmd);
}
