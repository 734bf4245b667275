/*
 * TFTP read pump: sends one file to one client in its own thread, the way tftpd-hpa's forked
 * child does (a blocking socket connected to the client's TID, one recv and one send per block),
 * with no event loop between an ACK and the next DATA. JavaScript decides everything before it
 * (request, tenant, file, options, OACK bytes, storm control) and learns how the transfer ended.
 * Same semantics as ReadSession in src/server/tftp/session.ts: windows (RFC 7440), retransmission
 * of the window from the last acknowledged block after a silent timeout, duplicate ACKs ignored
 * (no Sorcerer's Apprentice), 16-bit block numbers wrapping, the empty last block of a file that is
 * an exact multiple of blksize.
 *
 * Every packet from the client is hostile: only 4-byte ACKs and ERRORs are acted on; other TFTP
 * opcodes end the transfer with an ERROR, anything shorter or unknown is dropped.
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define READ_AHEAD (256 * 1024)

typedef struct {
  atomic_int refs; /* the thread's and the JavaScript handle's */
  pthread_mutex_t lock;
  int sock; /* -1 once the thread closed it */
  int aborted;
  int fd;
  uint64_t size;
  uint32_t blksize, windowsize, timeout_ms, max_retries;
  uint8_t *oack;
  size_t oack_len;
  napi_threadsafe_function done;
  /* result, written by the thread before it hands the session back */
  int ok;
  char reason[200];
} session_t;

static void unref(session_t *s) {
  if (atomic_fetch_sub(&s->refs, 1) != 1) return;
  pthread_mutex_destroy(&s->lock);
  free(s->oack);
  free(s);
}

static int64_t now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void send_error(int sock, uint16_t code, const char *msg) {
  uint8_t b[128];
  size_t n = strlen(msg);
  if (n > sizeof b - 5) n = sizeof b - 5;
  b[0] = 0;
  b[1] = 5;
  b[2] = code >> 8;
  b[3] = code & 0xff;
  memcpy(b + 4, msg, n);
  b[4 + n] = 0;
  (void)send(sock, b, 5 + n, MSG_NOSIGNAL);
}

typedef struct {
  session_t *s;
  uint8_t *packet; /* 4 + blksize */
  uint8_t *ahead;
  uint64_t ahead_from;
  size_t ahead_len;
  int read_failed;
} pump_t;

/* Sends DATA block i (1-based); the bytes come from a read-ahead buffer refilled with pread. */
static void send_block(pump_t *p, uint64_t i) {
  session_t *s = p->s;
  uint64_t from = (i - 1) * s->blksize;
  uint64_t to = from + s->blksize;
  if (to > s->size) to = s->size;
  size_t len = (size_t)(to - from);
  if (len > 0 && (p->ahead_len == 0 || from < p->ahead_from || to > p->ahead_from + p->ahead_len)) {
    size_t want = READ_AHEAD - (READ_AHEAD % s->blksize);
    if (want < s->blksize) want = s->blksize;
    ssize_t got;
    do got = pread(s->fd, p->ahead, want, (off_t)from);
    while (got < 0 && errno == EINTR);
    if (got < 0) got = 0;
    p->ahead_from = from;
    p->ahead_len = (size_t)got;
    if ((uint64_t)got < len) p->read_failed = 1; /* the file shrank under us */
  }
  p->packet[0] = 0;
  p->packet[1] = 3;
  p->packet[2] = (i >> 8) & 0xff;
  p->packet[3] = i & 0xff;
  if (len > 0) memcpy(p->packet + 4, p->ahead + (from - p->ahead_from), len);
  (void)send(s->sock, p->packet, 4 + len, MSG_NOSIGNAL);
}

static void finish(session_t *s, int ok, const char *reason) {
  s->ok = ok;
  snprintf(s->reason, sizeof s->reason, "%s", reason);
}

static void run(session_t *s) {
  pump_t p = {.s = s};
  p.packet = malloc(4 + s->blksize);
  p.ahead = malloc(READ_AHEAD > s->blksize ? READ_AHEAD : s->blksize);
  if (!p.packet || !p.ahead) {
    free(p.packet);
    free(p.ahead);
    return finish(s, 0, "out of memory");
  }
  const uint64_t blocks = s->size / s->blksize + 1;
  uint64_t acked = 0, sent = 0;
  int awaiting_oack = s->oack_len > 0;
  uint32_t retries = 0;
  uint8_t in[600];
  int64_t rcvtimeo = -1;

  /* One window from acked+1 (or the OACK), then the retransmission deadline. */
#define SEND_WINDOW()                                                            \
  do {                                                                           \
    uint64_t last = acked + s->windowsize;                                       \
    if (last > blocks) last = blocks;                                            \
    for (uint64_t i = acked + 1; i <= last; i++) send_block(&p, i);              \
    sent = last;                                                                 \
  } while (0)

  if (awaiting_oack) (void)send(s->sock, s->oack, s->oack_len, MSG_NOSIGNAL);
  else SEND_WINDOW();
  int64_t deadline = now_ms() + s->timeout_ms;

  for (;;) {
    if (p.read_failed) {
      send_error(s->sock, 0, "file changed during transfer");
      finish(s, 0, "file changed during transfer");
      break;
    }
    int64_t left = deadline - now_ms();
    if (left <= 0) {
      if (++retries > s->max_retries) {
        finish(s, 0, "client stopped answering");
        break;
      }
      if (awaiting_oack) (void)send(s->sock, s->oack, s->oack_len, MSG_NOSIGNAL);
      else SEND_WINDOW();
      deadline = now_ms() + s->timeout_ms;
      continue;
    }
    /*
     * The receive timeout is the time left, so a packet that changes nothing (a duplicate ACK)
     * does not postpone the retransmission. While ACKs keep advancing, the time left stays the
     * whole timeout and the socket option is not touched: one recv and one send per block.
     */
    if (left > rcvtimeo || left < rcvtimeo - 10) {
      struct timeval tv = {.tv_sec = left / 1000, .tv_usec = (left % 1000) * 1000};
      setsockopt(s->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      rcvtimeo = left;
    }
    ssize_t n = recv(s->sock, in, sizeof in, 0);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNREFUSED) continue;
      finish(s, 0, "socket error");
      break;
    }
    pthread_mutex_lock(&s->lock);
    int aborted = s->aborted;
    pthread_mutex_unlock(&s->lock);
    if (aborted) {
      finish(s, 0, "server closing");
      break;
    }
    if (n < 4) continue; /* garbled: the retransmission timer recovers */
    uint16_t op = (uint16_t)(in[0] << 8 | in[1]);
    if (op == 5) {
      size_t end = 4;
      while (end < (size_t)n && in[end] != 0) end++;
      char why[200];
      snprintf(why, sizeof why, "client error %u: %.*s", (unsigned)(in[2] << 8 | in[3]), (int)(end - 4 > 120 ? 120 : end - 4), (const char *)in + 4);
      for (char *c = why; *c; c++)
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e) *c = '?';
      finish(s, 0, why);
      break;
    }
    if (op >= 1 && op <= 6 && op != 4) {
      static const char *names[] = {"", "RRQ", "WRQ", "DATA", "ACK", "ERROR", "OACK"};
      char why[40];
      snprintf(why, sizeof why, "unexpected %s", names[op]);
      send_error(s->sock, 4, "expected ACK");
      finish(s, 0, why);
      break;
    }
    if (op != 4 || n != 4) continue; /* unknown opcode or a malformed ACK: dropped */
    uint16_t block = (uint16_t)(in[2] << 8 | in[3]);
    if (awaiting_oack) {
      if (block != 0) continue;
      awaiting_oack = 0;
      retries = 0;
      SEND_WINDOW();
      deadline = now_ms() + s->timeout_ms;
      continue;
    }
    uint64_t delta = (uint64_t)((block - (acked & 0xffff) + 0x10000) & 0xffff);
    if (delta == 0 || acked + delta > sent) continue; /* duplicate or stale ACK */
    acked += delta;
    retries = 0;
    if (acked >= blocks) {
      finish(s, 1, "");
      break;
    }
    if (acked == sent) SEND_WINDOW();
    deadline = now_ms() + s->timeout_ms;
  }
#undef SEND_WINDOW
  free(p.packet);
  free(p.ahead);
}

static void *thread_main(void *arg) {
  session_t *s = arg;
  run(s);
  pthread_mutex_lock(&s->lock);
  close(s->sock);
  s->sock = -1;
  pthread_mutex_unlock(&s->lock);
  /* The main thread reports the end and drops this thread's reference. */
  if (napi_call_threadsafe_function(s->done, s, napi_tsfn_blocking) != napi_ok) unref(s);
  napi_release_threadsafe_function(s->done, napi_tsfn_release);
  return NULL;
}

static void call_done(napi_env env, napi_value cb, void *context, void *data) {
  (void)context;
  session_t *s = data;
  if (env && cb) {
    napi_value argv[2], undefined;
    napi_get_boolean(env, s->ok, &argv[0]);
    napi_create_string_utf8(env, s->reason, NAPI_AUTO_LENGTH, &argv[1]);
    napi_get_undefined(env, &undefined);
    napi_call_function(env, undefined, cb, 2, argv, NULL);
  }
  unref(s);
}

static void handle_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  unref(data);
}

#define CHECK(call, msg)                                 \
  do {                                                   \
    if ((call) != napi_ok) {                             \
      napi_throw_error(env, "ERR_TFTP_PUMP", msg);       \
      goto fail;                                         \
    }                                                    \
  } while (0)

static int get_u32(napi_env env, napi_value obj, const char *key, uint32_t *out) {
  napi_value v;
  if (napi_get_named_property(env, obj, key, &v) != napi_ok) return 0;
  return napi_get_value_uint32(env, v, out) == napi_ok;
}

static int get_string(napi_env env, napi_value obj, const char *key, char *buf, size_t cap) {
  napi_value v;
  size_t len;
  if (napi_get_named_property(env, obj, key, &v) != napi_ok) return 0;
  return napi_get_value_string_utf8(env, v, buf, cap, &len) == napi_ok && len > 0 && len < cap - 1;
}

static int parse_addr(const char *host, uint32_t port, struct sockaddr_storage *ss, socklen_t *len) {
  memset(ss, 0, sizeof *ss);
  struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
  struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
  if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
    a4->sin_family = AF_INET;
    a4->sin_port = htons((uint16_t)port);
    *len = sizeof *a4;
    return 1;
  }
  if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
    a6->sin6_family = AF_INET6;
    a6->sin6_port = htons((uint16_t)port);
    *len = sizeof *a6;
    return 1;
  }
  return 0;
}

/*
 * read({ local, address, port, fd, size, blksize, windowsize, timeoutMs, retries, oack? }, done)
 * → handle. `local` is the address to bind (an ephemeral port: the transfer's TID), `address` and
 * `port` the client's; `fd` stays open and owned by the caller until `done(ok, reason)` runs.
 */
static napi_value pump_read(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], result = NULL, name;
  session_t *s = NULL;
  int sock = -1;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL), "bad arguments");
  if (argc < 2) {
    napi_throw_type_error(env, "ERR_TFTP_PUMP", "read(options, done)");
    return NULL;
  }
  char local[64], peer[64];
  uint32_t port, fd, blksize, windowsize, timeout_ms, retries;
  double size;
  napi_value v;
  if (!get_string(env, argv[0], "local", local, sizeof local) || !get_string(env, argv[0], "address", peer, sizeof peer) ||
      !get_u32(env, argv[0], "port", &port) || !get_u32(env, argv[0], "fd", &fd) || !get_u32(env, argv[0], "blksize", &blksize) ||
      !get_u32(env, argv[0], "windowsize", &windowsize) || !get_u32(env, argv[0], "timeoutMs", &timeout_ms) ||
      !get_u32(env, argv[0], "retries", &retries) || napi_get_named_property(env, argv[0], "size", &v) != napi_ok ||
      napi_get_value_double(env, v, &size) != napi_ok || size < 0 || size > 9007199254740991.0 || blksize < 8 || blksize > 65464 ||
      windowsize < 1 || windowsize > 64 || timeout_ms < 1 || port < 1 || port > 65535) {
    napi_throw_type_error(env, "ERR_TFTP_PUMP", "invalid options");
    return NULL;
  }
  struct sockaddr_storage la, pa;
  socklen_t ll, pl;
  if (!parse_addr(local, 0, &la, &ll) || !parse_addr(peer, port, &pa, &pl) || la.ss_family != pa.ss_family) {
    napi_throw_type_error(env, "ERR_TFTP_PUMP", "invalid addresses");
    return NULL;
  }
  s = calloc(1, sizeof *s);
  if (!s) {
    napi_throw_error(env, "ERR_TFTP_PUMP", "out of memory");
    return NULL;
  }
  atomic_init(&s->refs, 2);
  pthread_mutex_init(&s->lock, NULL);
  s->fd = (int)fd;
  s->size = (uint64_t)size;
  s->blksize = blksize;
  s->windowsize = windowsize;
  s->timeout_ms = timeout_ms;
  s->max_retries = retries;
  s->sock = -1;

  napi_value oack;
  bool has_oack = false;
  napi_has_named_property(env, argv[0], "oack", &has_oack);
  if (has_oack && napi_get_named_property(env, argv[0], "oack", &oack) == napi_ok) {
    bool is_buffer = false;
    napi_is_buffer(env, oack, &is_buffer);
    if (is_buffer) {
      void *data;
      size_t len;
      napi_get_buffer_info(env, oack, &data, &len);
      if (len > 0 && len <= 512) {
        s->oack = malloc(len);
        if (s->oack) {
          memcpy(s->oack, data, len);
          s->oack_len = len;
        }
      }
    }
  }

  sock = socket(la.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0 || bind(sock, (struct sockaddr *)&la, ll) != 0 || connect(sock, (struct sockaddr *)&pa, pl) != 0) {
    char msg[96];
    snprintf(msg, sizeof msg, "socket for the transfer: %s", strerror(errno));
    napi_throw_error(env, "ERR_TFTP_PUMP", msg);
    goto fail;
  }
  s->sock = sock;
  CHECK(napi_create_string_utf8(env, "tftp-pump", NAPI_AUTO_LENGTH, &name), "name");
  CHECK(napi_create_threadsafe_function(env, argv[1], NULL, name, 0, 1, NULL, NULL, NULL, call_done, &s->done), "callback");
  CHECK(napi_create_external(env, s, handle_finalize, NULL, &result), "handle");
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t t;
  /* Signals stay with Node's threads: the transfer thread starts with all of them blocked. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int err = pthread_create(&t, &attr, thread_main, s);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  pthread_attr_destroy(&attr);
  if (err != 0) {
    /* The handle's finalizer will drop its reference; drop the thread's here. */
    napi_release_threadsafe_function(s->done, napi_tsfn_abort);
    close(sock);
    s->sock = -1;
    unref(s);
    napi_throw_error(env, "ERR_TFTP_PUMP", "could not start a transfer thread");
    return NULL;
  }
  return result;

fail:
  if (sock >= 0) close(sock);
  if (s) {
    if (s->done) napi_release_threadsafe_function(s->done, napi_tsfn_abort);
    pthread_mutex_destroy(&s->lock);
    free(s->oack);
    free(s);
  }
  return NULL;
}

/* abort(handle): the transfer ends with "server closing" (its blocked recv is woken). */
static napi_value pump_abort(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  void *data = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 || napi_get_value_external(env, argv[0], &data) != napi_ok) {
    napi_throw_type_error(env, "ERR_TFTP_PUMP", "abort(handle)");
    return NULL;
  }
  session_t *s = data;
  pthread_mutex_lock(&s->lock);
  s->aborted = 1;
  /* Shutting a connected UDP socket down wakes a recv blocked on it (it returns 0). */
  if (s->sock >= 0) shutdown(s->sock, SHUT_RDWR);
  pthread_mutex_unlock(&s->lock);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"read", NULL, pump_read, NULL, NULL, NULL, napi_default, NULL},
      {"abort", NULL, pump_abort, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, 2, props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
