/* gos-feed: sends JSON lines (a file, stdin, or a synthetic load) to the
 * compositor's socket and ends with a sync barrier, so its exit means
 * everything sent was applied or answered. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gos_client.h"
#include "gos_time.h"

enum { EXIT_OK = 0, EXIT_REJECTED = 1, EXIT_USAGE = 2, EXIT_CONN = 3 };

#define SEND_BUF (64u * 1024u)

struct feed {
	struct gos_client *client;
	char *buf;
	size_t len;
	bool length_framing;
	uint64_t sent;
	bool quiet;
};

static void usage(FILE *f)
{
	char def[256];
	gos_default_socket_path(def, sizeof(def));
	fprintf(f,
	        "usage: gos-feed [--socket PATH] [--length-prefixed] FILE|-\n"
	        "       gos-feed [--socket PATH] --synthetic [--count N] [--rate R] [--streams K] [--bytes B]\n"
	        "\n"
	        "Sends JSON lines to gos-compositor, prints every error line it answers,\n"
	        "then waits for a sync barrier: when gos-feed exits, all was delivered.\n"
	        "\n"
	        "  --socket PATH       compositor socket (default %s)\n"
	        "  --length-prefixed   send Geometry OS frames (u32 little-endian length + JSON)\n"
	        "  --synthetic         generate token_activation events instead of reading input\n"
	        "  --count N           synthetic events to send (default 100000)\n"
	        "  --rate R            events per second (default 0: as fast as possible)\n"
	        "  --streams K         synthetic generations, round robin (default 4)\n"
	        "  --bytes B           pad each synthetic event to about B bytes (default 120)\n"
	        "  --quiet             do not print the summary line\n"
	        "  --help, --version\n"
	        "\n"
	        "exit codes: 0 all applied, 1 some lines rejected, 2 bad command line,\n"
	        "            3 cannot reach the compositor or the connection was lost\n",
	        def);
}

static void on_line(void *ctx, const char *line, size_t len)
{
	(void)ctx;
	if (memmem(line, len, "\"type\":\"error\"", 14))
		fprintf(stderr, "gos-feed: rejected: %.*s\n", (int)len, line);
}

static bool flush(struct feed *f)
{
	if (!f->len)
		return true;
	bool ok = gos_client_send_raw(f->client, f->buf, f->len);
	f->len = 0;
	return ok;
}

static bool put_line(struct feed *f, const char *line, size_t n)
{
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	size_t need = n + (f->length_framing ? 4 : 1);
	if (f->len + need > SEND_BUF && !flush(f))
		return false;
	if (need > SEND_BUF) {
		/* a huge line: send it on its own */
		if (f->length_framing) {
			unsigned char hdr[4] = {(unsigned char)n, (unsigned char)(n >> 8),
			                        (unsigned char)(n >> 16), (unsigned char)(n >> 24)};
			f->sent++;
			return gos_client_send_raw(f->client, (const char *)hdr, 4) &&
			       gos_client_send_raw(f->client, line, n);
		}
		f->sent++;
		return gos_client_send(f->client, line, n);
	}
	if (f->length_framing) {
		unsigned char *h = (unsigned char *)f->buf + f->len;
		h[0] = (unsigned char)n;
		h[1] = (unsigned char)(n >> 8);
		h[2] = (unsigned char)(n >> 16);
		h[3] = (unsigned char)(n >> 24);
		memcpy(f->buf + f->len + 4, line, n);
	} else {
		memcpy(f->buf + f->len, line, n);
		f->buf[f->len + n] = '\n';
	}
	f->len += need;
	f->sent++;
	return true;
}

static const char *const words[] = {
	" the", " model", " token", " map", " of", " light", " and", " shader", " GPU",
	" stream", " is", " a", " very", " fast", " compute", " text", " on", " every", ".",
};

static bool synthetic(struct feed *f, uint64_t count, double rate, uint32_t streams, uint32_t bytes)
{
	char line[8192];
	double start = gos_now_s();
	uint32_t rng = 12345;
	for (uint64_t i = 0; i < count; i++) {
		if (rate > 0 && (i & 63) == 0) {
			double due = start + (double)i / rate;
			double t = gos_now_s();
			if (due > t) {
				if (!flush(f))
					return false;
				struct timespec ts = {.tv_sec = (time_t)(due - t),
				                      .tv_nsec = (long)(((due - t) - (double)(time_t)(due - t)) * 1e9)};
				nanosleep(&ts, NULL);
			}
		}
		rng ^= rng << 13;
		rng ^= rng >> 17;
		rng ^= rng << 5;
		uint32_t k = (uint32_t)(i % streams);
		const char *w = words[rng % (sizeof(words) / sizeof(words[0]))];
		int n = snprintf(line, sizeof(line),
		                 "{\"type\":\"token_activation\",\"token_id\":\"s%u-%llu\",\"token_text\":\"%s\","
		                 "\"timestamp\":%.3f,\"confidence\":%.3f,\"stream\":\"syn-%u\"",
		                 k, (unsigned long long)(i / streams), w, 1.7e9 + (double)i * 1e-3,
		                 (double)(rng % 1000) / 1000.0, k);
		/* pad to the requested size with an ignored field */
		if ((uint32_t)n + 2 < bytes && bytes < sizeof(line) - 16) {
			int pad = (int)bytes - n - 10;
			if (pad > 0) {
				n += snprintf(line + n, sizeof(line) - (size_t)n, ",\"pad\":\"");
				memset(line + n, 'x', (size_t)pad);
				n += pad;
				line[n++] = '"';
			}
		}
		line[n++] = '}';
		if (!put_line(f, line, (size_t)n))
			return false;
	}
	return true;
}

static bool from_file(struct feed *f, FILE *in)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	bool ok = true;
	while (ok && (n = getline(&line, &cap, in)) >= 0)
		ok = put_line(f, line, (size_t)n);
	free(line);
	return ok;
}

static bool parse_num(const char *s, double lo, double hi, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi))
		return false;
	*out = v;
	return true;
}

int main(int argc, char **argv)
{
	enum { O_SOCKET = 256, O_LEN, O_SYN, O_COUNT, O_RATE, O_STREAMS, O_BYTES, O_QUIET, O_HELP, O_VERSION };
	static const struct option longopts[] = {
		{"socket", required_argument, NULL, O_SOCKET},
		{"length-prefixed", no_argument, NULL, O_LEN},
		{"synthetic", no_argument, NULL, O_SYN},
		{"count", required_argument, NULL, O_COUNT},
		{"rate", required_argument, NULL, O_RATE},
		{"streams", required_argument, NULL, O_STREAMS},
		{"bytes", required_argument, NULL, O_BYTES},
		{"quiet", no_argument, NULL, O_QUIET},
		{"help", no_argument, NULL, O_HELP},
		{"version", no_argument, NULL, O_VERSION},
		{0},
	};
	char path[256];
	gos_default_socket_path(path, sizeof(path));
	struct feed f = {0};
	bool syn = false;
	double count = 100000, rate = 0, streams = 4, bytes = 120;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		bool ok = true;
		switch (c) {
		case O_SOCKET: snprintf(path, sizeof(path), "%s", optarg); break;
		case O_LEN: f.length_framing = true; break;
		case O_SYN: syn = true; break;
		case O_COUNT: ok = parse_num(optarg, 0, 1e12, &count); break;
		case O_RATE: ok = parse_num(optarg, 0, 1e9, &rate); break;
		case O_STREAMS: ok = parse_num(optarg, 1, 100000, &streams); break;
		case O_BYTES: ok = parse_num(optarg, 0, 8000, &bytes); break;
		case O_QUIET: f.quiet = true; break;
		case O_HELP: usage(stdout); return EXIT_OK;
		case O_VERSION: printf("gos-feed %s\n", GOS_VERSION); return EXIT_OK;
		default:
			fprintf(stderr, "gos-feed: unknown or incomplete option '%s' (try --help)\n", argv[optind - 1]);
			return EXIT_USAGE;
		}
		if (!ok) {
			fprintf(stderr, "gos-feed: bad number '%s' for %s\n", optarg, argv[optind - 1]);
			return EXIT_USAGE;
		}
	}
	FILE *in = NULL;
	if (!syn) {
		if (optind != argc - 1) {
			fprintf(stderr, "gos-feed: give one input FILE, or - for stdin (try --help)\n");
			return EXIT_USAGE;
		}
		in = strcmp(argv[optind], "-") ? fopen(argv[optind], "r") : stdin;
		if (!in) {
			fprintf(stderr, "gos-feed: cannot open %s: %s\n", argv[optind], strerror(errno));
			return EXIT_USAGE;
		}
	} else if (optind != argc) {
		fprintf(stderr, "gos-feed: --synthetic takes no input file\n");
		return EXIT_USAGE;
	}

	char err[512];
	f.client = gos_client_connect(path, err, sizeof(err));
	if (!f.client) {
		fprintf(stderr, "gos-feed: %s\n", err);
		if (in && in != stdin)
			fclose(in);
		return EXIT_CONN;
	}
	gos_client_on_line(f.client, on_line, NULL);
	gos_client_set_length_prefixed(f.client, f.length_framing);
	f.buf = malloc(SEND_BUF);
	if (!f.buf)
		abort();
	double t0 = gos_now_s();
	bool ok = syn ? synthetic(&f, (uint64_t)count, rate, (uint32_t)streams, (uint32_t)bytes)
	              : from_file(&f, in);
	ok = ok && flush(&f);
	struct gos_sync_result r = {0};
	ok = ok && gos_client_sync(f.client, -1, &r);
	double dt = gos_now_s() - t0;
	if (in && in != stdin)
		fclose(in);
	free(f.buf);
	gos_client_close(f.client);
	if (!ok) {
		fprintf(stderr, "gos-feed: the connection to the compositor at %s was lost after %llu lines\n",
		        path, (unsigned long long)f.sent);
		return EXIT_CONN;
	}
	if (!f.quiet)
		fprintf(stderr, "gos-feed: sent %llu lines in %.3f s: applied %llu, rejected %llu; "
		        "%llu tokens on the map\n", (unsigned long long)f.sent, dt,
		        (unsigned long long)r.applied, (unsigned long long)r.rejected,
		        (unsigned long long)r.tokens);
	return r.rejected ? EXIT_REJECTED : EXIT_OK;
}
