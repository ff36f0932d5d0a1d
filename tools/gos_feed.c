/* gos-feed: sends JSON lines (a file, stdin, or a synthetic load) to the
 * compositor's socket and ends with a sync barrier, so its exit means
 * everything sent was applied or answered. With --realtime it replays a
 * recording (docs/recording.md) paced by its lines' "_t" arrival times. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gos_client.h"
#include "gos_nats.h"
#include "gos_time.h"

enum { EXIT_OK = 0, EXIT_REJECTED = 1, EXIT_USAGE = 2, EXIT_CONN = 3 };

#define SEND_BUF (64u * 1024u)

/* --realtime: line i goes out (t_i - t0) / speed seconds after the first. */
struct pace {
	bool on;
	double speed;
	bool have_t0;
	double t0;     /* the first "_t" of the recording */
	double t;      /* the latest "_t" (lines without one go out with it) */
	double start;  /* gos_now_s() when the first "_t" line went out */
};

struct feed {
	struct gos_client *client;
	struct gos_nats_producer *nats;   /* --nats: publishes instead of the socket */
	char *buf;
	size_t len;
	bool length_framing;
	uint64_t sent;
	bool quiet;
	struct pace pace;
};

static void usage(FILE *f)
{
	char def[256];
	gos_default_socket_path(def, sizeof(def));
	fprintf(f,
	        "usage: gos-feed [--socket PATH] [--length-prefixed] [--realtime [--speed X]] FILE|-\n"
	        "       gos-feed [--socket PATH] --synthetic [--count N] [--rate R] [--streams K] [--bytes B]\n"
	        "       gos-feed --nats URL [--cluster NAME] [--sync-timeout S] ... (as above)\n"
	        "\n"
	        "Sends JSON lines to gos-compositor, prints every error line it answers,\n"
	        "then waits for a sync barrier: when gos-feed exits, all was delivered.\n"
	        "A FILE is sent as fast as possible, or with --realtime replayed as recorded.\n"
	        "\n"
	        "  --socket PATH       compositor socket (default %s)\n"
	        "  --length-prefixed   send Geometry OS frames (u32 little-endian length + JSON)\n"
	        "  --nats URL          publish to NATS JetStream (CLUSTER.ingest.<stream>) instead\n"
	        "                      of the socket: each event waits for its JetStream ack, then\n"
	        "                      the compositor consuming them confirms it applied them (it\n"
	        "                      may start later: the events wait in JetStream)\n"
	        "  --cluster NAME      with --nats: the JetStream names' prefix (default gos)\n"
	        "  --sync-timeout S    with --nats: give up waiting for that after S seconds\n"
	        "                      (default: wait for ever); exit 3\n"
	        "  --realtime          replay a recording (docs/recording.md) at its own pace: each\n"
	        "                      line is sent when its \"_t\" (arrival time, seconds) minus the\n"
	        "                      first line's has passed since the first was sent; a line\n"
	        "                      without \"_t\" goes with the line before it\n"
	        "  --speed X           with --realtime: X times as fast (0 < X <= 1000, default 1)\n"
	        "  --synthetic         generate token_activation events instead of reading input\n"
	        "  --count N           synthetic events to send (default 100000)\n"
	        "  --rate R            events per second (default 0: as fast as possible)\n"
	        "  --streams K         synthetic generations, round robin (default 4)\n"
	        "  --bytes B           pad each synthetic event to about B bytes (default 120)\n"
	        "  --quiet             do not print the summary line\n"
	        "  --help, --version\n"
	        "\n"
	        "exit codes: 0 all applied, 1 some lines rejected, 2 bad command line or (with\n"
	        "            --realtime) a malformed \"_t\", 3 cannot reach the compositor or the\n"
	        "            connection was lost (--nats: NATS unreachable, an event refused by\n"
	        "            JetStream, or --sync-timeout passed)\n",
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
	if (!f->len || f->nats)
		return true;
	bool ok = gos_client_send_raw(f->client, f->buf, f->len);
	f->len = 0;
	return ok;
}

static bool put_line(struct feed *f, const char *line, size_t n)
{
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	if (f->nats) {
		f->sent++;
		return gos_nats_producer_send(f->nats, line, n);
	}
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

/* The value of the line's last "_t" key: 1 and *t when there is one, 0 when
 * there is none, -1 when it is not a finite JSON number followed by ',' or
 * '}'. A recording writes "_t" as the last key; reading it needs no JSON
 * parser (a '"' inside a string is escaped, so the text "_t": appears only
 * as a key). */
static int arrival_time(const char *line, size_t n, double *t)
{
	static const char key[] = "\"_t\":";
	const char *at = NULL;
	for (const char *p = line, *end = line + n; p < end;) {
		const char *q = memmem(p, (size_t)(end - p), key, sizeof(key) - 1);
		if (!q)
			break;
		at = q;
		p = q + 1;
	}
	if (!at)
		return 0;
	const char *v = at + sizeof(key) - 1, *end = line + n;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	char num[64];
	size_t k = 0;
	while (v + k < end && k < sizeof(num) - 1 && v[k] && strchr("0123456789+-.eE", v[k]))
		k++;
	if (k == 0 || k == sizeof(num) - 1)
		return -1;
	memcpy(num, v, k);
	num[k] = '\0';
	char *stop;
	errno = 0;
	double x = strtod(num, &stop);
	if (errno || stop != num + k || !isfinite(x))
		return -1;
	for (v += k; v < end && (*v == ' ' || *v == '\t' || *v == '\r' || *v == '\n'); v++)
		;
	if (v == end || (*v != ',' && *v != '}'))
		return -1;
	*t = x;
	return 1;
}

/* Waits until the line stamped t is due, reading the compositor's replies
 * meanwhile (its error lines print as they come; a lost connection ends the
 * wait). */
static bool wait_due(struct feed *f, double t)
{
	struct pace *pc = &f->pace;
	if (!pc->have_t0) {
		pc->have_t0 = true;
		pc->t0 = t;
		pc->start = gos_now_s();
	}
	pc->t = t;
	double due = pc->start + (t - pc->t0) / pc->speed;
	double left = due - gos_now_s();
	if (left <= 0)
		return true;
	if (!flush(f))
		return false;
	while (left > 0) {
		/* whole milliseconds, rounded up: a line never goes out early */
		double ms = ceil(left * 1e3);
		if (f->nats) {
			struct timespec ts = {(time_t)(ms / 1000), (long)(fmod(ms, 1000) * 1e6)};
			nanosleep(&ts, NULL);
			continue;
		}
		if (!gos_client_poll(f->client, ms > 1e6 ? 1000000 : (int)ms))
			return false;
		left = due - gos_now_s();
	}
	return true;
}

enum feed_end { FEED_OK, FEED_LOST, FEED_BAD_T };

static enum feed_end from_file(struct feed *f, FILE *in, const char *name)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	uint64_t line_no = 0;
	enum feed_end end = FEED_OK;
	while (end == FEED_OK && (n = getline(&line, &cap, in)) >= 0) {
		line_no++;
		double t;
		int has_t = f->pace.on ? arrival_time(line, (size_t)n, &t) : 0;
		if (has_t < 0) {
			size_t show = strcspn(line, "\r\n");
			fprintf(stderr, "gos-feed: %s:%llu: \"_t\" (the arrival time) is not a finite number: "
			        "%.*s%s\n", name, (unsigned long long)line_no, show > 200 ? 200 : (int)show,
			        line, show > 200 ? "..." : "");
			end = FEED_BAD_T;
			break;
		}
		if (has_t > 0 && !wait_due(f, t))
			end = FEED_LOST;
		else if (!put_line(f, line, (size_t)n))
			end = FEED_LOST;
	}
	free(line);
	return end;
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

/* gos-feed --nats: the same input published to JetStream; the sync waits for
 * every ack, then for the compositor to confirm. */
static int feed_nats(struct feed *f, const char *url, const char *cluster, double sync_timeout,
                     bool syn, FILE *in, const char *name, uint64_t count, double rate,
                     uint32_t streams, uint32_t bytes)
{
	char err[512];
	if (cluster && !gos_nats_check_cluster(cluster, err, sizeof(err))) {
		fprintf(stderr, "gos-feed: --cluster: %s\n", err);
		return EXIT_USAGE;
	}
	f->nats = gos_nats_producer_connect(url, cluster, err, sizeof(err));
	if (!f->nats) {
		fprintf(stderr, "gos-feed: %s\n", err);
		if (in && in != stdin)
			fclose(in);
		return EXIT_CONN;
	}
	gos_nats_producer_on_line(f->nats, on_line, NULL);
	double t0 = gos_now_s();
	enum feed_end end = FEED_OK;
	bool ok = syn ? synthetic(f, count, rate, streams, bytes)
	              : (end = from_file(f, in, in == stdin ? "stdin" : name)) == FEED_OK;
	if (in && in != stdin)
		fclose(in);
	struct gos_sync_result r = {0};
	char why[300] = "the connection to NATS was lost";
	ok = ok && gos_nats_producer_sync(f->nats, sync_timeout < 0 ? -1 : (int)(sync_timeout * 1000),
	                                  &r, why, sizeof(why));
	gos_nats_producer_close(f->nats);
	if (end == FEED_BAD_T) {
		fprintf(stderr, "gos-feed: stopped there: the %llu lines before it were published, "
		        "nothing after\n", (unsigned long long)f->sent);
		return EXIT_USAGE;
	}
	if (!ok) {
		fprintf(stderr, "gos-feed: %s (after %llu lines)\n", why, (unsigned long long)f->sent);
		return EXIT_CONN;
	}
	if (!f->quiet)
		fprintf(stderr, "gos-feed: published %llu lines to %s in %.3f s: applied %llu, rejected "
		        "%llu; %llu tokens on the map\n", (unsigned long long)f->sent, url,
		        gos_now_s() - t0, (unsigned long long)r.applied, (unsigned long long)r.rejected,
		        (unsigned long long)r.tokens);
	return r.rejected ? EXIT_REJECTED : EXIT_OK;
}

int main(int argc, char **argv)
{
	enum { O_SOCKET = 256, O_NATS, O_CLUSTER, O_SYNC_TIMEOUT, O_LEN, O_REALTIME, O_SPEED, O_SYN, O_COUNT, O_RATE, O_STREAMS, O_BYTES,
	       O_QUIET, O_HELP, O_VERSION };
	static const struct option longopts[] = {
		{"socket", required_argument, NULL, O_SOCKET},
		{"length-prefixed", no_argument, NULL, O_LEN},
		{"nats", required_argument, NULL, O_NATS},
		{"cluster", required_argument, NULL, O_CLUSTER},
		{"sync-timeout", required_argument, NULL, O_SYNC_TIMEOUT},
		{"realtime", no_argument, NULL, O_REALTIME},
		{"speed", required_argument, NULL, O_SPEED},
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
	bool syn = false, speed_given = false;
	const char *nats_url = NULL, *cluster = NULL;
	double sync_timeout = -1;
	double count = 100000, rate = 0, streams = 4, bytes = 120;
	f.pace.speed = 1;
	opterr = 0;
	int c;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		bool ok = true;
		switch (c) {
		case O_SOCKET: snprintf(path, sizeof(path), "%s", optarg); break;
		case O_LEN: f.length_framing = true; break;
		case O_NATS: nats_url = optarg; break;
		case O_CLUSTER: cluster = optarg; break;
		case O_SYNC_TIMEOUT: ok = parse_num(optarg, 0, 1e6, &sync_timeout); break;
		case O_REALTIME: f.pace.on = true; break;
		case O_SPEED:
			speed_given = true;
			if (!parse_num(optarg, 0, 1000, &f.pace.speed) || f.pace.speed <= 0) {
				fprintf(stderr, "gos-feed: bad --speed '%s': give a number above 0 and at most 1000\n",
				        optarg);
				return EXIT_USAGE;
			}
			break;
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
	if (speed_given && !f.pace.on) {
		fprintf(stderr, "gos-feed: --speed applies only with --realtime\n");
		return EXIT_USAGE;
	}
	if (syn && f.pace.on) {
		fprintf(stderr, "gos-feed: --realtime replays a FILE; --synthetic is paced by --rate\n");
		return EXIT_USAGE;
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
	if ((cluster || sync_timeout >= 0) && !nats_url) {
		fprintf(stderr, "gos-feed: --cluster and --sync-timeout apply only with --nats\n");
		return EXIT_USAGE;
	}
	if (nats_url && f.length_framing) {
		fprintf(stderr, "gos-feed: --length-prefixed is for the socket, not --nats\n");
		return EXIT_USAGE;
	}
	if (nats_url)
		return feed_nats(&f, nats_url, cluster, sync_timeout, syn, in, argv[argc - 1],
		                 (uint64_t)count, rate, (uint32_t)streams, (uint32_t)bytes);
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
	const char *name = in == stdin ? "stdin" : argv[argc - 1];
	double t0 = gos_now_s();
	enum feed_end end = FEED_OK;
	bool ok = syn ? synthetic(&f, (uint64_t)count, rate, (uint32_t)streams, (uint32_t)bytes)
	              : (end = from_file(&f, in, name)) == FEED_OK;
	if (end == FEED_BAD_T) {
		/* the lines before it were due: they go, nothing after them */
		bool sent = flush(&f);
		if (in != stdin)
			fclose(in);
		free(f.buf);
		gos_client_close(f.client);
		if (sent)
			fprintf(stderr, "gos-feed: stopped there: the %llu lines before it were sent, "
			        "nothing after\n", (unsigned long long)f.sent);
		else
			fprintf(stderr, "gos-feed: stopped there; the connection to the compositor was lost "
			        "too\n");
		return EXIT_USAGE;
	}
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
	if (!f.quiet && f.pace.on)
		fprintf(stderr, "gos-feed: replayed %llu lines in %.3f s (%.3f s of recording at speed %g): "
		        "applied %llu, rejected %llu; %llu tokens on the map\n", (unsigned long long)f.sent,
		        dt, f.pace.have_t0 ? f.pace.t - f.pace.t0 : 0.0, f.pace.speed,
		        (unsigned long long)r.applied, (unsigned long long)r.rejected,
		        (unsigned long long)r.tokens);
	else if (!f.quiet)
		fprintf(stderr, "gos-feed: sent %llu lines in %.3f s: applied %llu, rejected %llu; "
		        "%llu tokens on the map\n", (unsigned long long)f.sent, dt,
		        (unsigned long long)r.applied, (unsigned long long)r.rejected,
		        (unsigned long long)r.tokens);
	return r.rejected ? EXIT_REJECTED : EXIT_OK;
}
