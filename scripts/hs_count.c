/* hs_count: count lines of stdin that match any of the regexes in RULES (one per line), with
 * Hyperscan/vectorscan in block mode over 1 MiB chunks of whole lines: the "Hyperscan" peer of
 * scripts/bench-compare.sh. Patterns Hyperscan refuses are skipped with a warning. On stderr at
 * the end: the patterns taken and refused, the compile time and the time spent in hs_scan alone
 * (the "scan time alone" a comparison can use; reading the pipe is not in it).
 * Build: cc -O2 -o hs_count hs_count.c $(pkg-config --cflags --libs libhs) */
#define _GNU_SOURCE
#include <hs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

struct ctx { const char *buf; size_t len; size_t counted_end; unsigned long long lines; };

static int on_match(unsigned id, unsigned long long from, unsigned long long to,
                    unsigned flags, void *p) {
    (void)id; (void)from; (void)flags;
    struct ctx *c = p;
    if (to < c->counted_end) return 0;
    const char *nl = memchr(c->buf + to, '\n', c->len + 1 - to);
    c->counted_end = (size_t)(nl - c->buf) + 1;
    c->lines++;
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: hs_count RULES < input\n"); return 2; }
    FILE *f = fopen(argv[1], "r");
    if (!f) { perror(argv[1]); return 2; }
    char *pats[4096]; unsigned flags[4096], ids[4096]; unsigned n = 0, refused = 0;
    double t0 = now(), scan = 0;
    char line[8192];
    while (n < 4096 && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        if (!*line) continue;
        hs_database_t *one = NULL; hs_compile_error_t *err = NULL;
        if (hs_compile(line, HS_FLAG_MULTILINE | HS_FLAG_SINGLEMATCH, HS_MODE_BLOCK, NULL, &one, &err) != HS_SUCCESS) {
            fprintf(stderr, "hs_count: skipping /%s/: %s\n", line, err->message);
            hs_free_compile_error(err);
            refused++;
            continue;
        }
        hs_free_database(one);
        pats[n] = strdup(line); flags[n] = HS_FLAG_MULTILINE; ids[n] = n; n++;
    }
    fclose(f);
    hs_database_t *db = NULL; hs_compile_error_t *err = NULL;
    if (hs_compile_multi((const char *const *)pats, flags, ids, n, HS_MODE_BLOCK, NULL, &db, &err) != HS_SUCCESS) {
        fprintf(stderr, "hs_count: %s\n", err->message); return 1;
    }
    double compiled = now() - t0;
    hs_scratch_t *scratch = NULL;
    if (hs_alloc_scratch(db, &scratch) != HS_SUCCESS) { fprintf(stderr, "hs_count: scratch\n"); return 1; }
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap + 1);
    struct ctx c = { buf, 0, 0, 0 };
    for (;;) {
        ssize_t r = read(0, buf + len, cap - len);
        if (r < 0) { perror("read"); return 1; }
        len += (size_t)r;
        int eof = r == 0;
        size_t upto = len;
        if (!eof) {
            char *last = memrchr(buf, '\n', len);
            if (!last) { if (len < cap) continue; upto = len; } else upto = (size_t)(last - buf) + 1;
        }
        if (upto) {
            buf[upto] = '\n';
            c.counted_end = 0;
            c.len = upto;
            double s0 = now();
            hs_scan(db, buf, (unsigned)upto, 0, scratch, on_match, &c);
            scan += now() - s0;
            memmove(buf, buf + upto, len - upto);
            len -= upto;
        }
        if (eof) break;
    }
    printf("%llu\n", c.lines);
    fprintf(stderr, "hs_count: %u patterns (%u refused), compile %.3f s, scan %.3f s\n", n,
            refused, compiled, scan);
    return 0;
}
