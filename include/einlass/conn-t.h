/* conn-t.h - types only: a client connection (struct el_conn), the backend
 * connection serving it (struct el_upconn), and the state of the exchange
 * between them. No prototypes. conn.c owns the client side and every event
 * entry point (conn.h); upstream.c runs the backend exchange on the same
 * struct (upstream.h) and reads it through this header, so neither module
 * includes the other's header. Worker thread only. */
#ifndef EL_CONN_T_H
#define EL_CONN_T_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include <event2/event_struct.h>

#include "einlass/buf.h"
#include "einlass/gate.h"
#include "einlass/http.h"
#include "einlass/limiter.h"

struct el_worker;
struct el_generation;

/* Back-pressure: above this many bytes buffered for one side, einlass stops
 * reading the other side until it drains (in_paused, up_paused). */
#define EL_CONN_HIGH_WATER (256 * 1024)

/* A backend connection: owned by a client connection while it serves one,
 * else idle in its worker's keep-alive pool. */
struct el_upconn {
    int fd;
    struct event ev;          /* EV_READ|EV_WRITE|EV_ET|EV_PERSIST|EV_CLOSED */
    struct el_worker *w;
    struct el_conn *owner;    /* NULL while idle */
    struct el_buf in;         /* response bytes */
    struct el_buf out;        /* request bytes not yet sent */
    uint32_t gen_id;          /* generation whose backend address it reaches */
    bool connecting;          /* non-blocking connect in progress */
    bool reused;              /* taken from the pool (may have been closed by the backend) */
    struct el_upconn *next;   /* pool / free list */
};

enum el_conn_state {
    EL_CONN_IDLE,    /* between requests: idle timeout */
    EL_CONN_HEAD,    /* reading a request head: header timeout */
    EL_CONN_GATE,    /* waiting for the room's answer */
    EL_CONN_PROXY,   /* forwarding to the backend */
    EL_CONN_CLOSING, /* flushing the last bytes, then close */
    EL_CONN_CLOSED,  /* to be freed by the entry point on its way out */
};

struct el_conn {
    int fd;
    struct event ev;          /* client socket, registered once */
    struct event timer;       /* the one timeout of the current state */
    struct el_worker *w;
    struct el_generation *gen; /* generation of the current request (held) */
    struct el_buf in;          /* bytes from the client */
    struct el_buf out;         /* bytes to the client not yet sent */
    struct sockaddr_storage peer; /* the socket peer, or the source a PROXY v2 header names */
    char peer_ip[48];          /* the current request's client, as text: logs */
    uint8_t peer_ip_len;
    char hop_ip[48];           /* peer as text: appended to X-Forwarded-For */
    uint8_t hop_ip_len;
    struct sockaddr_storage client; /* the client a trusted peer names (peer_trusted) */
    bool peer_trusted;         /* peer is in trusted_proxies: its X-Forwarded-For counts */
    bool peer_local;           /* the socket peer is on this host or sent a PROXY header:
                                  its X-Forwarded-Proto counts */
    bool proxy_hdr;            /* a PROXY v2 header must come before the first head */
    enum el_conn_state state;
    bool close_after;          /* close once out is flushed */
    bool client_eof;           /* the client shut down its side */
    bool shut_wr;              /* lingering close: our side is shut down */
    bool gate_pending;         /* a gate callback is still due */
    bool dead;                 /* closed while gate_pending: free when it comes */
    bool in_paused;            /* stopped reading: backend side is full */
    bool up_paused;            /* stopped reading the backend: client side is full */
    bool in_more;              /* the last read filled the buffer: more may wait */
    bool in_run;               /* inside conn_run(): no re-entry */

    /* the current request */
    struct el_http_msg req;    /* head, pointing into in */
    uint64_t req_remaining;    /* Content-Length bytes still to forward */
    struct el_chunked req_chunk; /* chunked request body decoder */
    uint64_t req_body_bytes;   /* body bytes seen (max_body_bytes) */
    bool req_body_done;        /* the request body is completely read from the client */
    bool req_sent;             /* ... and the whole request written to the backend */
    bool head_method;          /* HEAD: the response has no body */
    bool idempotent;           /* the method may be retried on a fresh connection */
    char log_req[160];         /* "METHOD path" for the access log (access_log = on) */
    uint64_t t_start_us;       /* head complete */
    uint64_t t_sent_us;        /* head sent to the backend */
    uint64_t upstream_us;      /* backend time to the response head (access log) */
    struct el_gate_ctx gate;   /* the decision */

    /* the response */
    struct el_upconn *up;      /* backend connection, NULL if none */
    bool resp_head_done;       /* response head forwarded to the client */
    bool resp_done;            /* response completely forwarded */
    uint8_t resp_body;         /* enum el_http_body of the backend response */
    bool resp_chunk_out;       /* re-encode the body as chunked for the client */
    uint64_t resp_remaining;   /* Content-Length bytes still to copy */
    struct el_chunked resp_chunk; /* chunked response body decoder */
    int resp_status;           /* for the access log */
    uint64_t resp_bytes;       /* body bytes sent, for the access log */
    uint8_t retries;           /* reconnects after a stale pooled connection */
    bool resp_keepalive;       /* the backend connection may serve another request */
    uint32_t sent_head_len;    /* request head bytes, for a retry */
    bool counted_inflight;     /* inflight was incremented for this request */
    bool slot_held;            /* holds a backend slot (limiter.h) until the exchange ends */
    bool slot_waiting;         /* waits for one: in the limiter's queue or the worker's
                                  ready list; no backend connection, no body read */
    struct el_limiter_wait slot_wait; /* its node in those lists */

    struct el_conn *next, *prev; /* worker's list of open connections */
};

#endif
