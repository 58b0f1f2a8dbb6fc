/*
 * yamux: hashicorp/yamux's multiplexing wire protocol, without sockets, threads or clocks.
 *
 * The caller owns the transport. Bytes that arrive go into yamux_session_feed() in whatever
 * pieces the transport delivers; bytes to transmit come out through the send callback. Time is
 * passed in (yamux_session_set_now, yamux_session_ping) and only used to measure ping RTT.
 * The same code serves both roles: the proxy is the yamux client (opens odd stream ids), the edge
 * agent the server (accepts streams; opens even ids).
 *
 * Wire format (hashicorp/yamux spec.md): a 12-byte big-endian header
 *     version u8 (0) | type u8 | flags u16 | stream id u32 | length u32
 * Data carries `length` payload bytes; WindowUpdate's length is a receive-window delta; Ping's is
 * an opaque value echoed with ACK; GoAway's is a reason code. Each stream starts with a 256 KiB
 * window per direction; a delta sent with SYN/ACK enlarges it.
 *
 * Memory and buffering
 *   - A session buffers nothing but a partial 12-byte header: Data payload is handed to on_data
 *     as it arrives, in as many pieces as it was fed in. The application must take every byte it
 *     is given; the receive window bounds how much it can be given before it reports
 *     yamux_stream_consumed(), which is what reopens the window to the peer.
 *   - Output is handed to send() as one or two yamux_iov pieces (header, then payload). They
 *     point into the session or the caller's write buffer and are only valid during the call:
 *     the transport must copy or transmit them before returning.
 *   - One allocation per stream plus a hash table of stream ids; nothing is allocated per frame.
 *
 * Lifetimes
 *   - yamux_session_new() / yamux_session_free() own the session. A yamux_stream is owned by the
 *     session. Every stream the application has seen (returned by yamux_stream_open or announced
 *     through on_stream) gets exactly one on_closed callback, at the latest from inside
 *     yamux_session_free(). The stream pointer stays valid until on_closed returns, never longer.
 *   - A stream is finished when both directions have sent FIN, either side sent RST, or the
 *     session failed. From then on calls on it return YAMUX_ECLOSED (yamux_stream_consumed
 *     returns 0) until on_closed has been delivered.
 *
 * Callbacks and re-entrancy
 *   - Callbacks run synchronously inside the library function that caused them: on_stream,
 *     on_data, on_fin, on_writable, on_pong, on_goaway only inside yamux_session_feed(); send
 *     inside any function that transmits; on_closed at the end of the outermost library call
 *     (between frames inside feed, or just before any other function returns, or inside free),
 *     never nested inside another callback.
 *   - Inside callbacks other than send the application may call any yamux function on any
 *     stream of the session, including resetting or closing the stream the callback is about,
 *     except yamux_session_feed() (returns YAMUX_EBUSY) and yamux_session_free() (forbidden).
 *     Inside send it may call only the accessors of this module (the rest return YAMUX_EBUSY).
 *   - Single-threaded: a session and its streams belong to one thread (one libuv loop).
 *
 * Failure
 *   - A protocol violation by the peer (version not 0, unknown type, window overrun, duplicate
 *     SYN, SYN with our parity or id 0, Data on stream 0, Data after the peer's FIN) makes the
 *     session send GoAway(protocol error) and fail. A failing send callback fails it too. A
 *     failed session finishes every stream (on_closed with YAMUX_CLOSE_SESSION) and transmits
 *     nothing more; feed, open, ping and goaway return the error that failed it from then on.
 *     The caller tears the transport down and frees the session.
 *   - Tolerated: frames for unknown or already-closed stream ids (Data payload skipped),
 *     window updates after a FIN, a repeated FIN, the stream id of Ping and GoAway, ACKs for
 *     pings we no longer wait for.
 */
#ifndef EDGEGATE_YAMUX_H
#define EDGEGATE_YAMUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define YAMUX_HEADER_SIZE 12
#define YAMUX_VERSION 0
/* Both sides assume this window for every new stream until a SYN/ACK delta says otherwise. */
#define YAMUX_INITIAL_WINDOW (256u * 1024u)

enum yamux_type {
    YAMUX_TYPE_DATA = 0,
    YAMUX_TYPE_WINDOW_UPDATE = 1,
    YAMUX_TYPE_PING = 2,
    YAMUX_TYPE_GO_AWAY = 3,
};

enum yamux_flag {
    YAMUX_FLAG_SYN = 1,
    YAMUX_FLAG_ACK = 2,
    YAMUX_FLAG_FIN = 4,
    YAMUX_FLAG_RST = 8,
};

/* GoAway reason codes (the frame's length field). */
enum yamux_goaway_code {
    YAMUX_GOAWAY_NORMAL = 0,
    YAMUX_GOAWAY_PROTOCOL_ERROR = 1,
    YAMUX_GOAWAY_INTERNAL_ERROR = 2,
};

enum yamux_error {
    YAMUX_OK = 0,
    YAMUX_EINVAL = -1,     /* bad argument or configuration */
    YAMUX_ENOMEM = -2,     /* allocation failed */
    YAMUX_EBUSY = -3,      /* called from a context that forbids it (send, nested feed) */
    YAMUX_ETRANSPORT = -4, /* the send callback reported failure; session failed */
    YAMUX_ESESSION = -5,   /* the session is being freed */
    YAMUX_EGOAWAY = -6,    /* GoAway sent or received: no new streams */
    YAMUX_ELIMIT = -7,     /* max_streams streams are open */
    YAMUX_EIDS = -8,       /* the 32-bit stream id space is used up */
    YAMUX_ECLOSED = -9,    /* stream finished, or this direction already closed */
    YAMUX_ESTATE = -10,    /* inbound stream not accepted yet, or accepted twice */
    /* Protocol errors: the peer misbehaved; GoAway(protocol error) was sent. */
    YAMUX_EVERSION = -20, /* header version is not 0 */
    YAMUX_ETYPE = -21,    /* unknown frame type */
    YAMUX_EBADID = -22,   /* SYN with wrong parity or id 0, or Data on stream 0 */
    YAMUX_EDUPSYN = -23,  /* SYN for a stream id that is still open */
    YAMUX_EWINDOW = -24,  /* Data beyond the receive window the peer was given */
    YAMUX_EPROTO = -25,   /* other protocol violation (Data after the peer's FIN) */
};

/* A static, human-readable description of a yamux_error value. */
const char *yamux_strerror(int err);

/* True for the codes that mean "the peer broke the protocol". */
bool yamux_is_protocol_error(int err);

/* ---- Frame header ------------------------------------------------------------------------- */

typedef struct yamux_header {
    uint8_t version;
    uint8_t type;
    uint16_t flags;
    uint32_t stream_id;
    uint32_t length;
} yamux_header;

/* Writes the 12-byte big-endian encoding of h to out. */
void yamux_header_encode(const yamux_header *h, uint8_t out[YAMUX_HEADER_SIZE]);

/* Reads 12 bytes into h without judging them; validation is the session's job. */
void yamux_header_decode(const uint8_t in[YAMUX_HEADER_SIZE], yamux_header *h);

/* ---- Session ------------------------------------------------------------------------------ */

typedef struct yamux_session yamux_session;
typedef struct yamux_stream yamux_stream;

typedef struct yamux_config {
    bool is_client; /* client opens odd ids and accepts even ones; server the reverse */
    /* Receive window per stream, >= YAMUX_INITIAL_WINDOW; the surplus is advertised with the
     * SYN (streams we open) or ACK (streams we accept). Throughput per stream <= window / RTT. */
    uint32_t window;
    uint32_t max_streams;    /* open streams per session, both directions, incl. unaccepted */
    uint32_t accept_backlog; /* inbound streams announced but not yet accepted; beyond: RST */
    uint32_t max_frame;      /* largest Data payload we send in one frame */
} yamux_config;

#define YAMUX_DEFAULT_MAX_STREAMS 4096u
#define YAMUX_DEFAULT_ACCEPT_BACKLOG 256u
/* Small enough that one bulk stream cannot hold the tunnel for long, large enough that the
 * 12-byte header is noise (0.07 %). */
#define YAMUX_DEFAULT_MAX_FRAME (16u * 1024u)

/* Fills cfg with the defaults above for the given role. */
void yamux_config_init(yamux_config *cfg, bool is_client);

/* One piece of an outgoing frame. */
typedef struct yamux_iov {
    const uint8_t *base;
    size_t len;
} yamux_iov;

/* Why a stream ended, passed to on_closed. */
typedef enum yamux_close_reason {
    YAMUX_CLOSE_NORMAL = 0,       /* both sides sent FIN */
    YAMUX_CLOSE_LOCAL_RESET = 1,  /* this side called yamux_stream_reset */
    YAMUX_CLOSE_REMOTE_RESET = 2, /* the peer sent RST (also: it refused our SYN) */
    YAMUX_CLOSE_SESSION = 3,      /* the session failed or was freed */
} yamux_close_reason;

/*
 * Callbacks; `user` is the pointer given to yamux_session_new. Only send is required.
 *   send        transmit iov[0..iovcnt) (iovcnt is 1 or 2) in order; copy before returning.
 *               Return 0, or non-zero if the transport is gone (the session then fails with
 *               YAMUX_ETRANSPORT). May call only this module's accessors.
 *   on_stream   the peer opened a stream. Call yamux_stream_accept (now or later, e.g. after
 *               connecting to a target) or yamux_stream_reset. Until then it counts against the
 *               accept backlog, but on_data / on_fin may already fire for it. NULL: every
 *               inbound stream is refused with RST.
 *   on_data     payload for st; the pointer is valid during the call only. NULL: the data is
 *               dropped and counted as consumed at once.
 *   on_fin      the peer half-closed st; no more on_data for it.
 *   on_writable a write on st returned short (window exhausted) and the peer has since reopened
 *               the window. Fires once per stall, however many short writes.
 *   on_closed   st is finished (see reason); the last callback for st. The pointer is invalid
 *               after it returns.
 *   on_pong     the ACK for the last yamux_session_ping arrived; rtt is in the caller's clock.
 *   on_goaway   the peer sent GoAway; opening streams now fails, existing streams go on.
 */
typedef struct yamux_callbacks {
    int (*send)(void *user, const yamux_iov *iov, int iovcnt);
    void (*on_stream)(void *user, yamux_stream *st);
    void (*on_data)(void *user, yamux_stream *st, const uint8_t *data, size_t len);
    void (*on_fin)(void *user, yamux_stream *st);
    void (*on_writable)(void *user, yamux_stream *st);
    void (*on_closed)(void *user, yamux_stream *st, yamux_close_reason reason);
    void (*on_pong)(void *user, uint64_t rtt_ms);
    void (*on_goaway)(void *user, uint32_t code);
} yamux_callbacks;

/*
 * Creates a session. cfg and cb are copied. Sends nothing (yamux has no handshake).
 * Returns 0 and sets *out, or YAMUX_EINVAL (bad config, no send callback) / YAMUX_ENOMEM.
 */
int yamux_session_new(const yamux_config *cfg, const yamux_callbacks *cb, void *user,
                      yamux_session **out);

/*
 * Finishes every live stream (on_closed with YAMUX_CLOSE_SESSION fires for each, from inside
 * this call; library calls made from it return errors) and releases the session. Sends nothing:
 * call yamux_session_goaway first for a polite close. Must not be called from a callback.
 */
void yamux_session_free(yamux_session *s);

/*
 * Consumes len bytes received from the transport; frames may be split anywhere across calls.
 * Returns 0, or a negative yamux_error once the session has failed (GoAway already sent when the
 * peer broke the protocol; the rest of the input is ignored). YAMUX_EBUSY if called from a
 * callback.
 */
int yamux_session_feed(yamux_session *s, const void *data, size_t len);

/* Sets the caller's clock (any monotonic milliseconds), used when a pong arrives. */
void yamux_session_set_now(yamux_session *s, uint64_t now_ms);

/*
 * Sends a Ping with a fresh opaque value and remembers now_ms (which also sets the clock). Only
 * the latest ping is tracked: an ACK for an earlier one is ignored.
 */
int yamux_session_ping(yamux_session *s, uint64_t now_ms);

/* True while the last ping has not been answered. */
bool yamux_session_ping_outstanding(const yamux_session *s);

/*
 * Sends GoAway with code (YAMUX_GOAWAY_*). Afterwards opening streams fails with
 * YAMUX_EGOAWAY and inbound SYNs are refused with RST (as hashicorp does); existing streams go
 * on. A second call sends nothing and returns 0.
 */
int yamux_session_goaway(yamux_session *s, uint32_t code);

/* 0 while the session is healthy, else the error that failed it. */
int yamux_session_error(const yamux_session *s);

bool yamux_session_is_client(const yamux_session *s);

typedef struct yamux_session_stats {
    uint64_t bytes_in;        /* transport bytes consumed by feed */
    uint64_t bytes_out;       /* transport bytes passed to send */
    uint64_t payload_in;      /* Data payload delivered to on_data */
    uint64_t payload_out;     /* Data payload accepted by yamux_stream_write */
    uint64_t streams_opened;  /* by this side, ever */
    uint64_t streams_inbound; /* announced through on_stream, ever */
    uint32_t open_streams;    /* live now, both directions, including unaccepted */
    uint32_t pending_accept;  /* announced, neither accepted nor reset */
    bool goaway_sent;
    bool goaway_received;
} yamux_session_stats;

void yamux_session_get_stats(const yamux_session *s, yamux_session_stats *out);

/* ---- Streams ------------------------------------------------------------------------------ */

/*
 * Opens a stream (next odd id for a client, next even for a server) by sending WindowUpdate+SYN
 * with the window surplus. Data may be written at once; the peer's ACK is not awaited. Errors:
 * YAMUX_EGOAWAY, YAMUX_ELIMIT, YAMUX_EIDS, YAMUX_ENOMEM, or the session's failure.
 */
int yamux_stream_open(yamux_session *s, yamux_stream **out);

/* Accepts an inbound stream: sends WindowUpdate+ACK (with the window surplus). */
int yamux_stream_accept(yamux_stream *st);

/*
 * Sends up to len bytes as Data frames of at most cfg.max_frame bytes, as far as the peer's
 * window allows; nothing is buffered. Returns the number of bytes taken (possibly 0; on_writable
 * fires once the window reopens if it is short of len) or a negative error: YAMUX_ECLOSED after
 * close/reset, YAMUX_ESTATE on an inbound stream not yet accepted.
 */
ssize_t yamux_stream_write(yamux_stream *st, const void *data, size_t len);

/*
 * Reports that n more bytes given to on_data have left the application (written downstream).
 * Once the bytes consumed since the last update reach half the window, a WindowUpdate returns
 * them to the peer (none after the peer's FIN, nor before accept: the ACK carries them).
 * YAMUX_EINVAL if n exceeds what was delivered and not yet reported; 0 on a finished stream.
 */
int yamux_stream_consumed(yamux_stream *st, size_t n);

/*
 * Half-close: sends WindowUpdate+FIN; writing is over, receiving goes on. Idempotent. The stream
 * finishes once the peer's FIN is in too. YAMUX_ESTATE on an inbound stream not yet accepted.
 */
int yamux_stream_close(yamux_stream *st);

/* Abort: sends WindowUpdate+RST and finishes the stream (on_closed with LOCAL_RESET). Also the
 * way to refuse an inbound stream. */
int yamux_stream_reset(yamux_stream *st);

/* Accessors; valid on any stream until its on_closed returns, also from inside send. */
uint32_t yamux_stream_id(const yamux_stream *st);
yamux_session *yamux_stream_session(const yamux_stream *st);
void yamux_stream_set_user(yamux_stream *st, void *data);
void *yamux_stream_user(const yamux_stream *st);
/* Bytes the peer's window lets us write now. */
uint32_t yamux_stream_send_window(const yamux_stream *st);
/* Payload delivered to on_data / accepted by write on this stream. */
uint64_t yamux_stream_bytes_in(const yamux_stream *st);
uint64_t yamux_stream_bytes_out(const yamux_stream *st);
/* For streams we opened: the peer's ACK has arrived (for a stream-open timeout). Inbound: true. */
bool yamux_stream_is_acked(const yamux_stream *st);

#endif
