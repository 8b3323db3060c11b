/*
 * zipmembers: the cost of building export zip members (zip_member_build, src/export/zip.h)
 * without the object store or HTTP: T threads each build N members of export-like data
 * (a 6 KiB CSV, a 40 KiB PNG-like block that does not compress, a 200-byte JSON error
 * list) at a DEFLATE level, as the export's pool threads do; prints members per second
 * and the mean CPU microseconds per member (process CPU time over the members built, so
 * the figure holds on a loaded machine), and the same for a tiny member (where the
 * compressor's set-up dominates).
 *
 *   bench_zipmembers [THREADS [MEMBERS_PER_THREAD [LEVEL]]]     (defaults: 2 2000 6)
 */
#include "export/zip.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct job {
    int members, level;
    const unsigned char *csv, *png, *json;
    size_t csv_len, png_len, json_len;
    size_t tiny; /* 1: tiny members only */
    int failed;
} job;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void *run(void *arg)
{
    job *j = arg;
    for (int i = 0; i < j->members; i++) {
        zip_member m;
        const unsigned char *d;
        size_t len;
        if (j->tiny) {
            d = (const unsigned char *)"shot,value\n1,2\n";
            len = 15;
        } else if (i % 3 == 0) {
            d = j->csv;
            len = j->csv_len;
        } else if (i % 3 == 1) {
            d = j->png;
            len = j->png_len;
        } else {
            d = j->json;
            len = j->json_len;
        }
        if (zip_member_build("member.bin", d, len, true, j->level, 0x5a21, 0x6000, &m) != 0) {
            j->failed = 1;
            return NULL;
        }
        zip_member_free(&m);
    }
    return NULL;
}

static double cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Wall seconds; *cpu_s: CPU seconds of the process meanwhile. */
static double measure(int threads, job *proto, double *cpu_s)
{
    pthread_t t[64];
    job jobs[64];
    double t0 = now(), c0 = cpu();
    for (int i = 0; i < threads; i++) {
        jobs[i] = *proto;
        pthread_create(&t[i], NULL, run, &jobs[i]);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        if (jobs[i].failed) {
            fprintf(stderr, "zipmembers: zip_member_build failed\n");
            exit(1);
        }
    }
    *cpu_s = cpu() - c0;
    return now() - t0;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    int members = argc > 2 ? atoi(argv[2]) : 2000;
    int level = argc > 3 ? atoi(argv[3]) : 6;
    if (threads < 1 || threads > 64 || members < 1) {
        fprintf(stderr, "usage: bench_zipmembers [THREADS [MEMBERS_PER_THREAD [LEVEL]]]\n");
        return 2;
    }
    size_t csv_len = 6 << 10, png_len = 40 << 10, json_len = 200;
    unsigned char *csv = malloc(csv_len), *png = malloc(png_len), *json = malloc(json_len);
    if (!csv || !png || !json)
        return 1;
    size_t o = 0;
    for (int row = 0; o < csv_len; row++) {
        char line[96];
        int n = snprintf(line, sizeof(line), "20230605%06d,%d.%03d,%g\n", row, row % 97,
                         (row * 37) % 1000, row * 0.25);
        for (int k = 0; k < n && o < csv_len; k++)
            csv[o++] = (unsigned char)line[k];
    }
    unsigned x = 12345;
    for (size_t i = 0; i < png_len; i++) {
        x = x * 1103515245u + 12345u;
        png[i] = (unsigned char)(x >> 16);
    }
    for (size_t i = 0; i < json_len; i++)
        json[i] = (unsigned char)"{\"detail\":\"Could not find image\"}"[i % 34];

    job proto = {members, level, csv, png, json, csv_len, png_len, json_len, 0, 0};
    double c;
    measure(threads, &proto, &c); /* warm-up */
    double s = measure(threads, &proto, &c);
    long total = (long)threads * members;
    printf("export-like members, level %d, %d threads: %.0f members/s, %.1f CPU us per member\n",
           level, threads, (double)total / s, c * 1e6 / (double)total);
    proto.tiny = 1;
    s = measure(threads, &proto, &c);
    printf("tiny members (15 bytes), level %d, %d threads: %.0f members/s, %.1f CPU us per "
           "member\n",
           level, threads, (double)total / s, c * 1e6 / (double)total);
    free(csv);
    free(png);
    free(json);
    return 0;
}
