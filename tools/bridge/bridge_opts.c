/* gos-bridge's command line (--help, the options and their checks) and the
 * prompt (--prompt, --prompt-file or stdin). */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridge.h"
#include "gos_nats.h"
#include "gos_utf8.h"

static void usage(FILE *f)
{
	char def[256];
	gos_default_socket_path(def, sizeof def);
	fprintf(f,
"usage: gos-bridge --url URL [--url URL2 ...] [OPTIONS] [--prompt TEXT | --prompt-file F]\n"
"       gos-bridge --sse URL [OPTIONS]\n"
"\n"
"Streams an LLM's tokens into gos-compositor as they are generated. With --url,\n"
"asks an OpenAI-compatible server (LM Studio, llama.cpp server, vLLM, Ollama,\n"
"OpenAI) for a chat completion (POST URL/chat/completions, stream: true; or\n"
"with --completions a raw-prompt completion, POST URL/completions); each\n"
"token goes on the map coloured by its probability. With --sse, follows any\n"
"server-sent event stream: each event's data becomes one token (data that is\n"
"already an ingest JSON object is passed on as it is).\n"
"\n"
"generation (--url):\n"
"  --url URL[,max=N]    server base URL, e.g. http://127.0.0.1:1234/v1; give several\n"
"                       for a pool: the first healthy one is used, the next takes\n"
"                       over when it fails; max=N: at most N generations at once\n"
"                       on this URL (others wait for a slot or go elsewhere)\n"
"  --spread             spread the generations over every healthy --url (the\n"
"                       least busy first) instead of filling the first\n"
"  --breaker-failures K with several --url, a URL's circuit breaker opens after K\n"
"                       failures in a row (default 3): skipped, then one probe\n"
"                       generation after a wait; a probe that works closes it,\n"
"                       one that fails reopens it for twice as long\n"
"  --breaker-cooldown S the first wait before the probe (default 5, up to 60)\n"
"  --model NAME         model (default: the first of GET URL/models, else none)\n"
"  --prompt TEXT        the user message (else --prompt-file, else stdin)\n"
"  --prompt-file F      read the user message from F ('-': stdin)\n"
"  --system TEXT        a system message\n"
"  --completions        POST URL/completions with the prompt as it is (for base\n"
"                       models; no chat template, no --system)\n"
"  --seed N             ask the server for this sampling seed\n"
"  --max-tokens N       generate at most N tokens (also the progress total)\n"
"  --temperature T      sampling temperature (default: the server's)\n"
"  --top-logprobs K     alternatives per token shown on hover (default 5, 0..20)\n"
"  --no-logprobs        do not ask for logprobs (tokens are drawn neutral)\n"
"  --api-key KEY        bearer token (default: $OPENAI_API_KEY)\n"
"  --parallel N         run N generations of the prompt at once, each its own\n"
"                       stream on the map (default 1)\n"
"  --max-retries N      attempts after a failure before giving up (default 5;\n"
"                       --sse: failed reconnects in a row, default: no limit)\n"
"  --echo               also print the generated text on stdout\n"
"  --cache DIR          keep every finished generation in DIR; the same request\n"
"                       again (model, messages or prompt, sampling parameters,\n"
"                       seed, which of --parallel) replays it without asking\n"
"                       the server: tokens, logprobs, alternatives, timing\n"
"  --cache-speed X      replay X times as fast as recorded (default 1; 0: at once)\n"
"  --cache-max-bytes N  keep at most N bytes of entries, least recently used go\n"
"                       first (K, M, G suffixes; default 256M)\n"
"\n"
"event stream (--sse):\n"
"  --sse URL            follow this event stream (GET), reconnecting with\n"
"                       Last-Event-ID after a drop\n"
"  --event TYPE         the event type that becomes tokens (default message)\n"
"  --max-events N       stop after N events (default: run until interrupted)\n"
"  --reconnect S        wait S seconds before reconnecting, until the server sets\n"
"                       its own (retry: field); doubled while it stays down (default 3)\n"
"\n"
"common:\n"
"  --socket PATH        the compositor's socket (default %s)\n"
"  --nats URL           publish to NATS JetStream (CLUSTER.ingest.<stream>) instead\n"
"                       of the socket: stored once acked, applied by whichever\n"
"                       compositor consumes the cluster (docs/scale-out.md)\n"
"  --cluster NAME       with --nats: the JetStream names' prefix (default gos)\n"
"  --stream NAME        name the stream(s) on the map NAME:RUN[:K] (default: the\n"
"                       model's short name, without directories, or 'sse'); with\n"
"                       several --url, NAME@HOST:PORT:RUN:K by the server that\n"
"                       generates it\n"
"  --connect-timeout S  give up connecting after S seconds (default 10)\n"
"  --read-timeout S     give up on a response silent for S seconds (default 120)\n"
"  --buffer N           events kept while the compositor is away (default 10000)\n"
"  --sync-timeout S     at exit, wait up to S seconds for the compositor to\n"
"                       confirm every event (default 10)\n"
"  --quiet              no notices or summary (errors are still printed)\n"
"  --help, --version\n"
"\n"
"Connection errors and HTTP 408, 429 and 5xx are retried with exponential\n"
"backoff and jitter (Retry-After is honoured), but not a 5xx whose body says\n"
"the request is invalid (llama.cpp answers some invalid requests with 500);\n"
"other 4xx are not retried, the server's message is shown. An error sent\n"
"inside the stream (an 'error:' line, 'event: error', or data {\"error\": ...})\n"
"before the first token is retried when the server calls it transient (503,\n"
"busy, loading), else it fails (exit 5); after the first token the generation\n"
"fails (exit 1, neural_state error with the server's message), never restarted.\n"
"--sse: HTTP 204 No Content ends the stream for good (exit 0, no reconnect).\n"
"\n"
"exit codes: 0 every generation finished and the compositor applied every event\n"
"            (--sse: the stream ended, HTTP 204, --max-events reached, or\n"
"            SIGINT/SIGTERM)\n"
"            1 a generation failed after it had started (an error in the stream,\n"
"              lost connection or read timeout after tokens were shown)\n"
"            2 bad command line\n"
"            3 the compositor: its socket not reachable at start, or events not\n"
"              confirmed at exit, dropped (--buffer) or rejected\n"
"            4 no server reachable (connection refused, DNS, timeouts), after retries\n"
"            5 the server answered with an HTTP error, or with an error in the\n"
"              stream before the first token (after retries for transient ones)\n"
"            6 the server's answer was not an event stream (wrong Content-Type)\n"
"          130 interrupted (SIGINT/SIGTERM) during a generation\n",
	        def);
}

static bool parse_int(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

static bool parse_seconds(const char *s, double lo, double hi, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(v) || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

/* Bytes with an optional K, M or G (binary) suffix, at least 1024. */
static bool parse_bytes(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || s[0] == '-')
		return false;
	int shift = 0;
	if (*end == 'K' || *end == 'k')
		shift = 10;
	else if (*end == 'M' || *end == 'm')
		shift = 20;
	else if (*end == 'G' || *end == 'g')
		shift = 30;
	if (shift)
		end++;
	if (*end || v > (UINT64_MAX >> shift) || (v << shift) < 1024)
		return false;
	*out = (uint64_t)v << shift;
	return true;
}

int bridge_parse_args(int argc, char **argv, struct options *o)
{
	enum { O_URL = 256, O_SSE, O_EVENT, O_MODEL, O_PROMPT, O_PROMPT_FILE, O_SYSTEM,
	       O_MAX_TOKENS, O_TEMPERATURE, O_TOP_LOGPROBS, O_NO_LOGPROBS, O_API_KEY, O_SOCKET, O_NATS, O_CLUSTER,
	       O_PARALLEL, O_CONNECT_TIMEOUT, O_READ_TIMEOUT, O_MAX_RETRIES, O_MAX_EVENTS,
	       O_BUFFER, O_STREAM, O_SYNC_TIMEOUT, O_ECHO, O_QUIET, O_HELP, O_VERSION, O_RECONNECT,
	       O_COMPLETIONS, O_SEED, O_SPREAD, O_BREAKER_FAILURES, O_BREAKER_COOLDOWN, O_CACHE,
	       O_CACHE_SPEED, O_CACHE_MAX_BYTES };
	static const struct option longopts[] = {
		{"url", required_argument, NULL, O_URL},
		{"sse", required_argument, NULL, O_SSE},
		{"event", required_argument, NULL, O_EVENT},
		{"model", required_argument, NULL, O_MODEL},
		{"prompt", required_argument, NULL, O_PROMPT},
		{"prompt-file", required_argument, NULL, O_PROMPT_FILE},
		{"system", required_argument, NULL, O_SYSTEM},
		{"completions", no_argument, NULL, O_COMPLETIONS},
		{"spread", no_argument, NULL, O_SPREAD},
		{"cache", required_argument, NULL, O_CACHE},
		{"cache-speed", required_argument, NULL, O_CACHE_SPEED},
		{"cache-max-bytes", required_argument, NULL, O_CACHE_MAX_BYTES},
		{"breaker-failures", required_argument, NULL, O_BREAKER_FAILURES},
		{"breaker-cooldown", required_argument, NULL, O_BREAKER_COOLDOWN},
		{"seed", required_argument, NULL, O_SEED},
		{"max-tokens", required_argument, NULL, O_MAX_TOKENS},
		{"temperature", required_argument, NULL, O_TEMPERATURE},
		{"top-logprobs", required_argument, NULL, O_TOP_LOGPROBS},
		{"no-logprobs", no_argument, NULL, O_NO_LOGPROBS},
		{"api-key", required_argument, NULL, O_API_KEY},
		{"socket", required_argument, NULL, O_SOCKET},
		{"nats", required_argument, NULL, O_NATS},
		{"cluster", required_argument, NULL, O_CLUSTER},
		{"parallel", required_argument, NULL, O_PARALLEL},
		{"connect-timeout", required_argument, NULL, O_CONNECT_TIMEOUT},
		{"read-timeout", required_argument, NULL, O_READ_TIMEOUT},
		{"max-retries", required_argument, NULL, O_MAX_RETRIES},
		{"max-events", required_argument, NULL, O_MAX_EVENTS},
		{"reconnect", required_argument, NULL, O_RECONNECT},
		{"buffer", required_argument, NULL, O_BUFFER},
		{"stream", required_argument, NULL, O_STREAM},
		{"sync-timeout", required_argument, NULL, O_SYNC_TIMEOUT},
		{"echo", no_argument, NULL, O_ECHO},
		{"quiet", no_argument, NULL, O_QUIET},
		{"help", no_argument, NULL, O_HELP},
		{"version", no_argument, NULL, O_VERSION},
		{0},
	};
	*o = (struct options){
		.event_type = "message",
		.temperature = -1,
		.top_logprobs = 5,
		.parallel = 1,
		.connect_timeout = 10,
		.read_timeout = 120,
		.max_retries = -2,   /* default per mode, below */
		.buffer = 10000,
		.sync_timeout = 10,
		.reconnect = 3,
		.breaker_failures = 3,
		.breaker_cooldown = 5,
		.cache_speed = 1,
		.cache_max_bytes = 256ull << 20,
	};
	gos_default_socket_path(o->socket_path, sizeof o->socket_path);
	int c;
	int64_t v;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case O_URL:
			if (o->n_urls == MAX_URLS) {
				fprintf(stderr, "gos-bridge: at most %d --url\n", MAX_URLS);
				return EXIT_USAGE;
			}
			if (strncmp(optarg, "http://", 7) && strncmp(optarg, "https://", 8)) {
				fprintf(stderr, "gos-bridge: --url wants an http:// or https:// URL, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			{
				/* a trailing ",max=N" is ours, not the URL's */
				char *cap = strrchr(optarg, ',');
				int max = 0;
				if (cap && !strncmp(cap, ",max=", 5)) {
					if (!parse_int(cap + 5, 1, 4096, &v)) {
						fprintf(stderr, "gos-bridge: --url %s: max= wants 1 to 4096\n", optarg);
						return EXIT_USAGE;
					}
					max = (int)v;
					*cap = '\0';
				}
				o->url_max[o->n_urls] = max;
				o->urls[o->n_urls++] = optarg;
			}
			break;
		case O_SPREAD: o->spread = true; break;
		case O_CACHE:
			if (!optarg[0] || strlen(optarg) > 3000) {
				fprintf(stderr, "gos-bridge: --cache wants a directory\n");
				return EXIT_USAGE;
			}
			o->cache_dir = optarg;
			break;
		case O_CACHE_SPEED:
			if (!parse_seconds(optarg, 0, 1000000, &o->cache_speed)) {
				fprintf(stderr, "gos-bridge: --cache-speed wants a number from 0, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case O_CACHE_MAX_BYTES:
			if (!parse_bytes(optarg, &o->cache_max_bytes)) {
				fprintf(stderr, "gos-bridge: --cache-max-bytes wants bytes (1024 or more, K/M/G "
				        "suffixes), not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case O_BREAKER_FAILURES:
			if (!parse_int(optarg, 1, 1000, &v)) {
				fprintf(stderr, "gos-bridge: --breaker-failures wants 1 to 1000, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			o->breaker_failures = (int)v;
			break;
		case O_BREAKER_COOLDOWN:
			if (!parse_seconds(optarg, 0.01, 60, &o->breaker_cooldown)) {
				fprintf(stderr, "gos-bridge: --breaker-cooldown wants seconds (0.01 to 60), not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case O_SSE:
			if (strncmp(optarg, "http://", 7) && strncmp(optarg, "https://", 8)) {
				fprintf(stderr, "gos-bridge: --sse wants an http:// or https:// URL, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			o->sse_url = optarg;
			break;
		case O_EVENT: o->event_type = optarg; break;
		case O_MODEL: o->model = optarg; break;
		case O_PROMPT: o->prompt = optarg; break;
		case O_PROMPT_FILE: o->prompt_file = optarg; break;
		case O_SYSTEM: o->system = optarg; break;
		case O_COMPLETIONS: o->completions = true; break;
		case O_SEED:
			if (!parse_int(optarg, 0, INT64_C(9007199254740991), &v)) {
				fprintf(stderr, "gos-bridge: --seed wants a whole number from 0, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			o->has_seed = true;
			o->seed = v;
			break;
		case O_MAX_TOKENS:
			if (!parse_int(optarg, 1, 100000000, &v)) {
				fprintf(stderr, "gos-bridge: --max-tokens wants a whole number from 1, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			o->max_tokens = v;
			break;
		case O_TEMPERATURE:
			if (!parse_seconds(optarg, 0, 100, &o->temperature)) {
				fprintf(stderr, "gos-bridge: --temperature wants a number from 0, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case O_TOP_LOGPROBS:
			if (!parse_int(optarg, 0, 20, &v)) {
				fprintf(stderr, "gos-bridge: --top-logprobs wants 0 to 20, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			o->top_logprobs = (int)v;
			break;
		case O_NO_LOGPROBS: o->no_logprobs = true; break;
		case O_API_KEY: o->api_key = optarg; break;
		case O_SOCKET:
			if (strlen(optarg) >= sizeof o->socket_path) {
				fprintf(stderr, "gos-bridge: --socket path is too long\n");
				return EXIT_USAGE;
			}
			snprintf(o->socket_path, sizeof o->socket_path, "%s", optarg);
			break;
		case O_NATS: o->nats_url = optarg; break;
		case O_CLUSTER: {
			char why[200];
			if (!gos_nats_check_cluster(optarg, why, sizeof why)) {
				fprintf(stderr, "gos-bridge: --cluster: %s\n", why);
				return EXIT_USAGE;
			}
			o->cluster = optarg;
			break;
		}
		case O_PARALLEL:
			if (!parse_int(optarg, 1, 4096, &v)) {
				fprintf(stderr, "gos-bridge: --parallel wants 1 to 4096, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			o->parallel = (int)v;
			break;
		case O_CONNECT_TIMEOUT:
			if (!parse_seconds(optarg, 0.001, 3600, &o->connect_timeout)) {
				fprintf(stderr, "gos-bridge: --connect-timeout wants seconds (0.001 to 3600), not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case O_READ_TIMEOUT:
			if (!parse_seconds(optarg, 0.001, 86400, &o->read_timeout)) {
				fprintf(stderr, "gos-bridge: --read-timeout wants seconds (0.001 to 86400), not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case O_MAX_RETRIES:
			if (!parse_int(optarg, 0, 1000000, &v)) {
				fprintf(stderr, "gos-bridge: --max-retries wants a whole number from 0, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			o->max_retries = (int)v;
			break;
		case O_MAX_EVENTS:
			if (!parse_int(optarg, 1, INT64_MAX, &v)) {
				fprintf(stderr, "gos-bridge: --max-events wants a whole number from 1, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			o->max_events = (uint64_t)v;
			break;
		case O_RECONNECT:
			if (!parse_seconds(optarg, 0.001, 3600, &o->reconnect)) {
				fprintf(stderr, "gos-bridge: --reconnect wants seconds (0.001 to 3600), not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case O_BUFFER:
			if (!parse_int(optarg, 1, 100000000, &v)) {
				fprintf(stderr, "gos-bridge: --buffer wants 1 to 100000000 events, not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			o->buffer = (size_t)v;
			break;
		case O_STREAM:
			if (!optarg[0] || strlen(optarg) > 96 || !gos_utf8_valid(optarg, strlen(optarg))) {
				fprintf(stderr, "gos-bridge: --stream wants a name of 1 to 96 bytes of UTF-8\n");
				return EXIT_USAGE;
			}
			o->stream = optarg;
			break;
		case O_SYNC_TIMEOUT:
			if (!parse_seconds(optarg, 0, 3600, &o->sync_timeout)) {
				fprintf(stderr, "gos-bridge: --sync-timeout wants seconds (0 to 3600), not '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case O_ECHO: o->echo = true; break;
		case O_QUIET: o->quiet = true; break;
		case O_HELP: usage(stdout); exit(EXIT_OK);
		case O_VERSION: printf("gos-bridge %s\n", GOS_VERSION); exit(EXIT_OK);
		default:
			if (optopt)
				fprintf(stderr, "gos-bridge: option '%s' wants a value\n", argv[optind - 1]);
			else
				fprintf(stderr, "gos-bridge: unknown option '%s'\n", argv[optind - 1]);
			fprintf(stderr, "try 'gos-bridge --help'\n");
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "gos-bridge: unexpected argument '%s' (try --help)\n", argv[optind]);
		return EXIT_USAGE;
	}
	if (!o->n_urls == !o->sse_url) {
		fprintf(stderr, "gos-bridge: give --url (an OpenAI-compatible server) or --sse (an event "
		        "stream), not %s (try --help)\n", o->n_urls ? "both" : "neither");
		return EXIT_USAGE;
	}
	if (o->sse_url && (o->prompt || o->prompt_file || o->parallel > 1)) {
		fprintf(stderr, "gos-bridge: --prompt, --prompt-file and --parallel go with --url, not --sse\n");
		return EXIT_USAGE;
	}
	if (o->sse_url && (o->completions || o->has_seed || o->cache_dir)) {
		fprintf(stderr, "gos-bridge: --completions, --seed and --cache go with --url, not --sse\n");
		return EXIT_USAGE;
	}
	if (o->completions && o->system) {
		fprintf(stderr, "gos-bridge: --completions sends the prompt as it is: put the system text "
		        "in the prompt, not --system\n");
		return EXIT_USAGE;
	}
	if (o->prompt && o->prompt_file) {
		fprintf(stderr, "gos-bridge: give --prompt or --prompt-file, not both\n");
		return EXIT_USAGE;
	}
	if (o->max_retries == -2)
		o->max_retries = o->sse_url ? -1 : 5;
	if (!o->api_key)
		o->api_key = getenv("OPENAI_API_KEY");
	bridge_quiet = o->quiet;
	return -1;
}

/* ---- the prompt ---- */

static char *read_all(FILE *f)
{
	size_t len = 0, cap = 4096;
	char *s = malloc(cap);
	if (!s)
		return NULL;
	size_t n;
	while ((n = fread(s + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (cap - len < 2) {
			if (cap > (64u << 20)) {
				free(s);
				errno = EFBIG;
				return NULL;
			}
			cap *= 2;
			char *t = realloc(s, cap);
			if (!t) {
				free(s);
				return NULL;
			}
			s = t;
		}
	}
	if (ferror(f)) {
		free(s);
		return NULL;
	}
	s[len] = '\0';
	return s;
}

int bridge_load_prompt(struct bridge *b)
{
	const struct options *o = &b->o;
	if (o->prompt) {
		b->prompt = strdup(o->prompt);
	} else {
		FILE *f = stdin;
		const char *name = "stdin";
		if (o->prompt_file && strcmp(o->prompt_file, "-")) {
			name = o->prompt_file;
			f = fopen(o->prompt_file, "rb");
			if (!f) {
				fprintf(stderr, "gos-bridge: cannot read the prompt file %s: %s\n", name, strerror(errno));
				return EXIT_USAGE;
			}
		} else if (isatty(0)) {
			fprintf(stderr, "gos-bridge: reading the prompt from stdin (end it with Ctrl-D)\n");
		}
		b->prompt = read_all(f);
		int e = errno;
		if (f != stdin)
			fclose(f);
		if (!b->prompt) {
			fprintf(stderr, "gos-bridge: cannot read the prompt from %s: %s\n", name, strerror(e));
			return EXIT_USAGE;
		}
	}
	size_t n = strlen(b->prompt);
	while (n && (b->prompt[n - 1] == '\n' || b->prompt[n - 1] == '\r'))
		b->prompt[--n] = '\0';
	if (!n) {
		fprintf(stderr, "gos-bridge: the prompt is empty (give --prompt, --prompt-file or text on stdin)\n");
		return EXIT_USAGE;
	}
	if (!gos_utf8_valid(b->prompt, n)) {
		fprintf(stderr, "gos-bridge: the prompt is not valid UTF-8\n");
		return EXIT_USAGE;
	}
	return -1;
}
