/* store_internal.h - constants both stores share (store_memory.c in C,
 * store_redis.c in its Lua scripts), so the two meter the same way. */
#ifndef EL_STORE_INTERNAL_H
#define EL_STORE_INTERNAL_H

/* A longer pause between two advances counts as this long: a stalled meter
 * must not release a burst when it resumes. */
#define EL_METER_MAX_GAP_MS 2000
/* The measured rate is updated after this much metered time during which
 * someone was waiting (the meter, not demand, set the pace). */
#define EL_METER_WINDOW_MS 2000
/* No meter run for this long (every instance stopped, or Redis was
 * unreachable): the liveness generations are paused for that time, so a
 * place is not lost to an outage nobody could have polled through. */
#define EL_METER_STALL_MS 5000
/* An instance whose meter has not run for this long is no longer counted
 * among the live instances sharing a Redis room. */
#define EL_INSTANCE_TTL_MS 3000
/* EWMA weight of the newest window. */
#define EL_METER_ALPHA 0.3
/* Largest debt the credits to cancel (el_meter_in) build up against release
 * credits. */
#define EL_METER_MAX_DEBT 50.0

/* Released pass ids the memory store keeps for one credit per pass (and the
 * room for its revocation set): about 2 MB each, more than 200 releases a
 * second over a 600 s session. */
#define EL_STORE_RELEASED_MAX (1u << 17)

#define EL_STR_(x) #x
#define EL_STR(x) EL_STR_(x)

#endif
