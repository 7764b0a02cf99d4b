/* Latency probe for examples/latency.rs --static: started by logalarm as the alarm's shell
   (PROBE -c COMMAND), it reads the clock first, then the line on its stdin, and appends
   "SECONDS LINE" to $LATENCY_OUT. Linked statically: no dynamic loader runs before the clock. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
int main(void) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    char line[4096];
    if (!fgets(line, sizeof line, stdin)) line[0] = 0;
    const char *p = getenv("LATENCY_OUT");
    if (!p) return 0;
    FILE *f = fopen(p, "a");
    if (!f) return 0;
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
    fprintf(f, "%ld.%06ld %s\n", (long)t.tv_sec, t.tv_nsec / 1000, line);
    fclose(f);
    return 0;
}
