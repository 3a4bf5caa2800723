/*
 * The kernel's share of an in-process acquire+release: the system calls the library makes
 * for one uncontended slot (open/create, flock, fstat + lstat to check the path; with a
 * record getuid, uname and the write; lstat + unlink on release, close), from C, timed over
 * many rounds. Prints the median of 25 batches, in microseconds, for no record and for a
 * record of argv[2] bytes.
 * Usage: syscalls DIR RECORD_BYTES
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

static double now_us(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1e6 + t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double batch_median(const char *path, const char *record, size_t len) {
  enum { BATCHES = 25, ROUNDS = 2000 };
  double per[BATCHES];
  struct stat a, b;
  struct utsname host;
  for (int k = 0; k < BATCHES; k++) {
    double t0 = now_us();
    for (int i = 0; i < ROUNDS; i++) {
      int fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0666);
      if (fd < 0 || flock(fd, LOCK_EX | LOCK_NB) != 0) { perror(path); exit(1); }
      fstat(fd, &a);
      lstat(path, &b);
      if (len > 0) {
        (void)getuid();
        if (uname(&host) != 0 || pwrite(fd, record, len, 0) != (ssize_t)len) { perror("record"); exit(1); }
      }
      lstat(path, &b);
      unlink(path);
      close(fd);
    }
    per[k] = (now_us() - t0) / ROUNDS;
  }
  qsort(per, BATCHES, sizeof per[0], cmp);
  return per[BATCHES / 2];
}

int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: syscalls DIR RECORD_BYTES\n"); return 2; }
  char path[4096];
  snprintf(path, sizeof path, "%s/syscalls.slot0.lock", argv[1]);
  size_t len = (size_t)atol(argv[2]);
  char *record = calloc(1, len + 1);
  printf("{\"bare\":%.2f,\"record\":%.2f}\n", batch_median(path, record, 0), batch_median(path, record, len));
  return 0;
}
