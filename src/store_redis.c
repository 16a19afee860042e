/* store_redis.c - the waiting room's state in Redis, shared by every
 * instance using the same Redis and room name (store.h).
 *
 * Keys of room R all carry the hash tag {R}:
 *   einlass:{R}:meter      hash: h0 h1 t0 t1 (head/tail per lane), w0 w1
 *                          (live waiting per lane), g gt (generation number
 *                          and start, ms), frac last cred (meter), rate bn bms
 *                          (measured rate and its window), adm (passes
 *                          claimed), r0 r1 (tail per lane at the last roll),
 *                          pf (set once the block counts below are kept),
 *                          c0 c1 (claim horizon per lane: admitted tickets
 *                          below may no longer claim), k0 k1 (late mark: a
 *                          claim below is later than 3 x poll_s), q0 q1
 *                          (entries of held:L older than 3 x poll_s), unc
 *                          (held admissions returned as credit), kept
 *                          (claims below the late mark)
 *   einlass:{R}:live:P:L   liveness bitmap of generation parity P, lane L
 *   einlass:{R}:blk:P:L    block counts of live:P:L below rL (blocks of B =
 *                          65536 ticket numbers, 8 KB of bitmap): while P is
 *                          the current generation, field b = set bits in
 *                          block b; while P is the previous one, field i =
 *                          set bits below min(i * B, rL) (prefix sums)
 *   einlass:{R}:x:L        exchange bitmap of lane L
 *   einlass:{R}:held:L     list of lane L's held admissions, oldest first:
 *                          "time:head:n" (n tickets admitted below head, the
 *                          first at time, ms), one entry a second at most,
 *                          claim_ms / 1 s entries (a few KB); the meter pops
 *                          an entry claim_ms old and credits its n minus the
 *                          exchange bits in [cL, head) (store.h)
 *   einlass:{R}:inst       sorted set of live instances (member: an id each
 *                          instance draws at start, score: Redis time of its
 *                          last meter run, ms), trimmed to the last
 *                          EL_INSTANCE_TTL_MS: the instance count every
 *                          instance's fallback meters its share by
 *   einlass:{R}:rel        sorted set of released pass ids (member: the id
 *                          in decimal, score: Redis time of the release in
 *                          ms), trimmed to the last ttl by each release: ZADD
 *                          NX makes the first release of an id the one that
 *                          adds a credit; instances read it from their last
 *                          score on (ZRANGEBYSCORE) to learn revocations
 *   einlass:{R}:ev:ID      hash per event pre-queue (ID: the event's id in
 *                          hex, event.h): n (arrivals), and once drawn base
 *                          (the first lane 0 number reserved) and seed (hex,
 *                          "" for arrival order); 14 days from its last write
 *
 * Positions in O(1). A waiting ticket's position is the number of live
 * (prev) bits in [head, num]; a plain BITCOUNT over that range reads
 * (num - head) / 8 bytes, 1.25 MB per poll at 10 million waiting (about 250
 * us of Redis time). Instead, per lane, with rL the tail at the last roll:
 *   - joins take the numbers from rL upwards in order and set them in both
 *     bitmaps, so every number in [rL, tail) is set in cur and in prev.
 *   - below rL, prev gains no bits: S, its bits there, is frozen at the roll.
 *     Cur gains bits there by checks and admissions, and its blk hash counts
 *     them per block, exactly: where such a bit goes 0 -> 1 (SETBIT answers
 *     the old bit) its block's count goes up by one. Bits never go 1 -> 0
 *     except by deleting bitmap and hash together. Joins count nothing.
 *   - the roll (cur becomes prev) adds the joined range to cur's counts and
 *     turns them into prefix sums, once: O(n / B) fields, 153 at 10 million,
 *     in one script per generation (L seconds).
 * So live bits in [a, b] = the part of [a, b] at or above rL (all set) +
 * BITCOUNT over a's partial block + prefix(bb) - prefix(ba + 1) (one HMGET
 * of two fields) + BITCOUNT over b's partial block (at most 2 x 8 KB): O(1),
 * about 16 us per check at 10 million waiting, against 10 us with an empty
 * queue; joins cost what they did. The generation roll recounts w0/w1 the
 * same way. The hashes are small: at most one field per block below rL,
 * about 153 each at 10 million (a few KB), next to the 1.25 MB bitmaps. A
 * room written by a version without them (no pf in the meter) gets them
 * built from its bitmaps by the first script that runs (about 5 ms at 10
 * million), with rL = tail; instances of both versions must not share a
 * room, since the old scripts set bits without counting them. The meter's
 * BITPOS over dead tickets is not bounded this way, but it only moves
 * forward: each number is stepped over once.
 *
 * Every op is one Lua script (EVALSHA, EVAL after NOSCRIPT), so it is atomic
 * across instances; time is Redis TIME, so the meter is one global clock and
 * advance from many instances does not multiply the rate. The scripts keep
 * the same invariants as store_memory.c (see there).
 *
 * Link and callback invariants:
 *   - s->ac is NULL while disconnected (waiting for the reconnect timer);
 *     ops then call back err = -1 at once. While connecting, commands queue
 *     in hiredis and are subject to the same timeout.
 *   - every op handed to hiredis is on s->pending (oldest first) and is freed
 *     only in its hiredis reply callback, which hiredis always runs (with a
 *     NULL reply on disconnect or free). op->done marks that the user's
 *     callback already ran, so it runs exactly once.
 *   - one timer watches the oldest pending op; when it is overdue the link is
 *     dropped (redisAsyncFree: every pending op calls back -1) and reconnects
 *     with backoff 100 ms doubling to 2 s.
 *   - el_store free with ops still inside hiredis (freed from a callback)
 *     only marks the store dead; the last reply callback frees it. s->depth
 *     counts our frames that may call back, so a user callback that frees
 *     the store never pulls it from under us. A context
 *     we let go of has ac->data = NULL, so its late connect/disconnect
 *     callbacks touch nothing.
 * Ticket numbers are 64-bit in C and in the cookie; the scripts keep them as
 * Lua doubles, exact below 2^53 (a join at 2^53 is refused: an error the
 * operator sees, el_store_errors). Bit offsets are relative to the lane's
 * base b0/b1 (REBASE), so bitmaps span the waiting tickets, however long the
 * room lives: 10 million waiting tickets take about 3.75 MB of bitmaps.
 *
 * Epochs: the meter's ep field (below 2^32, not 0) is drawn when the script
 * finds no epoch; a missing room (new, or Redis lost its data) also starts
 * its numbers at Redis time in ms x 1024 (a multiple of B), so a later
 * epoch's numbers are above every earlier epoch's (at fewer than 1024 joins
 * a ms) and never equal an old ticket's. Tickets carry the epoch they were
 * issued in (token.h); one of another epoch joins the returning lane (see
 * lua_check), served before both lanes. A room from before epochs gets an
 * epoch and keeps its numbers. */
#include "store_internal.h"

#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "einlass/common.h"
#include "einlass/redis_conn.h"
#include "einlass/store.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 1000 /* recovery within 2 s of Redis coming back */
#define AUTH_BACKOFF_MAX_MS 5000 /* AUTH refused: retried this slowly at most */
#define SENTINEL_BACKOFF_MAX_MS 200 /* with Sentinel: ask again this often at least, so a
                                       promoted replica is used within this of its promotion
                                       (a sentinel's answer is cheap) */
#define NKEYS 17
#define BLOCK 65536 /* ticket numbers per counted block */
/* A lane's bitmaps start at its base b (a multiple of BLOCK): bit i stands
 * for ticket number b + i. Once the head and the claim horizon are this far
 * above b, the bytes below them are cut off (GETRANGE + SET of the rest, at
 * most the waiting span's bytes, once per 8 M numbers), so a bitmap spans
 * the waiting tickets, not every number ever handed out. */
#define REBASE 8388608
/* Lua numbers are doubles: ticket numbers stay below 2^53 (a join there is
 * refused with an error). A new room starts at Redis time in ms x 1024,
 * about 2^50.6 in 2026: 2^53 is reached after thousands of years of joins
 * at 41k/s, or in the year 2255 for a room created then. */
#define NUM_LIMIT "9007199254740992"
#define RET_TTL_MS 86400000 /* the returning lane and its marks live a day past the last use */

/* KEYS: 1 meter, 2..5 live bitmaps (KEYS[2 + parity * 2 + lane]), 6..7
 * exchange per lane, 8..11 block counts (KEYS[8 + parity * 2 + lane]), 12
 * released pass ids, 13..14 held admissions per lane, 15 instances, 16..17
 * the returning lane (its order, and each member's state; lua_check).
 * ARGV[1] = L (keep_place_s, ms), ARGV[2] = claim_ms, ARGV[3] = 3 x poll_s
 * in ms (every script gets all three; its own arguments follow). Sets the locals and helpers every script uses, builds
 * missing block counts, and rolls the generation when due. live(CUR, l) /
 * live(PREV, l) name a lane's bitmaps and blk() their block counts; set_cur
 * sets a cur bit (at a number below tail) and counts it; count_live(l, a, b)
 * counts lane l's live (prev) bits in [a, b]. */
#define LUA_PRELUDE                                                                                \
    "local m = KEYS[1]\n"                                                                          \
    "local B = " EL_STR(BLOCK) "\n"                                                                \
    "local CUR, PREV = 0, 1\n"                                                                     \
    "local t = redis.call('TIME')\n"                                                               \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"                      \
    "local L = math.max(tonumber(ARGV[1]), 1)\n"                                                   \
    "local f = redis.call('HMGET', m, 'h0', 'h1', 't0', 't1', 'w0', 'w1', 'g', 'gt', 'rate',\n"    \
    "  'r0', 'r1', 'pf', 'last', 'b0', 'b1', 'ep', 'c0', 'c1')\n"                                  \
    "local head = {tonumber(f[1]) or 0, tonumber(f[2]) or 0}\n"                                    \
    "local tail = {tonumber(f[3]) or 0, tonumber(f[4]) or 0}\n"                                    \
    "local w = {tonumber(f[5]) or 0, tonumber(f[6]) or 0}\n"                                       \
    "local g = tonumber(f[7]) or 0\n"                                                              \
    "local gt = tonumber(f[8])\n"                                                                  \
    "local mrate = f[9] or '0'\n"                                                                  \
    "local r = {tonumber(f[10]) or 0, tonumber(f[11]) or 0}\n"                                     \
    "local base = {tonumber(f[14]) or 0, tonumber(f[15]) or 0}\n"                                  \
    "local ep = f[16]\n"                                                                           \
    "if not ep then\n" /* the epoch, from the microsecond clock: below 2^32, not 0 */              \
    "  ep = tostring((tonumber(t[1]) % 4293) * 1000000 + tonumber(t[2]) + 1)\n"                    \
    "  if not f[7] then\n" /* no room (new, or Redis lost it): numbers start at time x 1024 */     \
    "    local s, sb = now * 1024, math.floor(now * 1024 / B) * B\n"                               \
    "    head, tail, r, base = {s, s}, {s, s}, {s, s}, {sb, sb}\n"                                 \
    "    redis.call('HSET', m, 'h0', s, 'h1', s, 't0', s, 't1', s, 'r0', s, 'r1', s, 'b0', sb,\n"  \
    "      'b1', sb, 'c0', s, 'c1', s, 'k0', s, 'k1', s, 'pf', 1)\n"                               \
    "    f[12], f[17], f[18] = '1', s, s\n"                                                        \
    "  end\n"                                                                                      \
    "  redis.call('HSET', m, 'ep', ep)\n"                                                          \
    "end\n"                                                                                        \
    "local nret = redis.call('ZCARD', KEYS[16])\n"                                                 \
    "local function off(l, n) return n - base[l + 1] end\n"                                        \
    "local function live(p, l) return KEYS[2 + ((g + p) % 2) * 2 + l] end\n"                       \
    "local function blk(p, l) return KEYS[8 + ((g + p) % 2) * 2 + l] end\n"                        \
    "local function set_cur(l, num)\n"                                                             \
    "  if redis.call('SETBIT', live(CUR, l), off(l, num), 1) == 0 then\n"                          \
    "    redis.call('HINCRBY', blk(CUR, l), math.floor(num / B), 1)\n"                             \
    "  end\n"                                                                                      \
    "end\n"                                                                                        \
    "local function hset_all(h, kv)\n"                                                             \
    "  redis.call('DEL', h)\n"                                                                     \
    "  for i = 1, #kv, 2000 do\n"                                                                  \
    "    redis.call('HSET', h, unpack(kv, i, math.min(i + 1999, #kv)))\n"                          \
    "  end\n"                                                                                      \
    "end\n"                                                                                        \
    "local function bitmap_counts(key, l)\n"                                                       \
    "  local c, b0 = {}, base[l + 1] / B\n"                                                        \
    "  for b = 0, math.ceil(redis.call('STRLEN', key) * 8 / B) - 1 do\n"                           \
    "    c[b0 + b] = redis.call('BITCOUNT', key, b * B, b * B + B - 1, 'BIT')\n"                   \
    "  end\n"                                                                                      \
    "  return c\n"                                                                                 \
    "end\n"                                                                                        \
    "local function set_counts(l, c)\n"                                                            \
    "  local kv = {}\n"                                                                            \
    "  for b, n in pairs(c) do\n"                                                                  \
    "    if n > 0 then kv[#kv + 1] = b; kv[#kv + 1] = n end\n"                                     \
    "  end\n"                                                                                      \
    "  hset_all(blk(CUR, l), kv)\n"                                                                \
    "end\n"                                                                                        \
    "local function set_prefix(l, c)\n"                                                            \
    "  local kv, acc = {}, 0\n"                                                                    \
    "  for i = base[l + 1] / B + 1, math.ceil(r[l + 1] / B) do\n"                                  \
    "    acc = acc + (c[i - 1] or 0)\n"                                                            \
    "    if acc > 0 then kv[#kv + 1] = i; kv[#kv + 1] = acc end\n"                                 \
    "  end\n"                                                                                      \
    "  hset_all(blk(PREV, l), kv)\n"                                                               \
    "end\n"                                                                                        \
    "local function count_live(l, a, b)\n"                                                         \
    "  if b < a then return 0 end\n"                                                               \
    "  local n, rl = 0, r[l + 1]\n"                                                                \
    "  if b >= rl then\n"                                                                          \
    "    n = b - math.max(a, rl) + 1\n"                                                            \
    "    b = rl - 1\n"                                                                             \
    "    if b < a then return n end\n"                                                             \
    "  end\n"                                                                                      \
    "  local bm = live(PREV, l)\n"                                                                 \
    "  local ba, bb = math.floor(a / B), math.floor(b / B)\n"                                      \
    "  if ba == bb then return n + redis.call('BITCOUNT', bm, off(l, a), off(l, b), 'BIT') end\n"  \
    "  local p = redis.call('HMGET', blk(PREV, l), ba + 1, bb)\n"                                  \
    "  return n + redis.call('BITCOUNT', bm, off(l, a), off(l, ba * B + B - 1), 'BIT') +\n"        \
    "    (tonumber(p[2]) or 0) - (tonumber(p[1]) or 0) +\n"                                        \
    "    redis.call('BITCOUNT', bm, off(l, bb * B), off(l, b), 'BIT')\n"                           \
    "end\n"                                                                                        \
    "if not f[12] then\n"                                                                          \
    "  for l = 0, 1 do\n"                                                                          \
    "    set_counts(l, bitmap_counts(live(CUR, l), l))\n"                                          \
    "    r[l + 1] = tail[l + 1]\n"                                                                 \
    "    set_prefix(l, bitmap_counts(live(PREV, l), l))\n"                                         \
    "  end\n"                                                                                      \
    "  redis.call('HSET', m, 'pf', 1, 'r0', r[1], 'r1', r[2])\n"                                   \
    "end\n"                                                                                        \
    "local mlast = tonumber(f[13])\n"                                                              \
    "if gt ~= nil and mlast ~= nil and now - mlast > " EL_STR(EL_METER_STALL_MS) " then\n"        \
    "  gt = math.min(gt + now - mlast, now)\n"                                                     \
    "  redis.call('HSET', m, 'gt', gt, 'last', now)\n"                                            \
    "end\n"                                                                                        \
    "if gt == nil then\n"                                                                          \
    "  gt = now\n"                                                                                 \
    "  redis.call('HSET', m, 'g', g, 'gt', gt)\n"                                                  \
    "elseif now - gt >= L then\n"                                                                  \
    "  if now - gt >= 2 * L then\n"                                                                \
    "    redis.call('DEL', KEYS[2], KEYS[3], KEYS[4], KEYS[5],\n"                                  \
    "      KEYS[8], KEYS[9], KEYS[10], KEYS[11])\n"                                                \
    "    gt = now\n"                                                                               \
    "  else\n"                                                                                     \
    "    g = g + 1\n"                                                                              \
    "    redis.call('DEL', live(CUR, 0), live(CUR, 1), blk(CUR, 0), blk(CUR, 1))\n"                \
    "    gt = gt + L\n"                                                                            \
    "    for l = 0, 1 do\n"                                                                        \
    "      local c, kv, a = {}, redis.call('HGETALL', blk(PREV, l)), r[l + 1]\n"                   \
    "      for i = 1, #kv, 2 do c[tonumber(kv[i])] = tonumber(kv[i + 1]) end\n"                    \
    "      while a < tail[l + 1] do\n"                                                             \
    "        local b = math.floor(a / B)\n"                                                        \
    "        local e = math.min(b * B + B, tail[l + 1])\n"                                         \
    "        c[b] = (c[b] or 0) + e - a\n"                                                         \
    "        a = e\n"                                                                              \
    "      end\n"                                                                                  \
    "      r[l + 1] = tail[l + 1]\n"                                                               \
    "      set_prefix(l, c)\n"                                                                     \
    "    end\n"                                                                                    \
    "  end\n"                                                                                      \
    "  r = {tail[1], tail[2]}\n"                                                                   \
    "  for i = 1, 2 do w[i] = count_live(i - 1, head[i], tail[i] - 1) end\n"                       \
    "  redis.call('HSET', m, 'g', g, 'gt', gt, 'w0', w[1], 'w1', w[2], 'r0', r[1], 'r1', r[2])\n"  \
    "end\n"                                                                                        \
    "for l = 0, 1 do\n" /* cut the bitmaps below the head and the claim horizon (REBASE) */        \
    "  local nb = math.floor(math.min(head[l + 1], tonumber(f[17 + l]) or 0) / B) * B\n"           \
    "  if nb - base[l + 1] >= " EL_STR(REBASE) " then\n"                                           \
    "    local cut = (nb - base[l + 1]) / 8\n"                                                     \
    "    for _, key in ipairs({KEYS[2 + l], KEYS[4 + l], KEYS[6 + l]}) do\n"                       \
    "      if redis.call('STRLEN', key) <= cut then redis.call('DEL', key)\n"                      \
    "      else redis.call('SET', key, redis.call('GETRANGE', key, cut, -1)) end\n"                \
    "    end\n"                                                                                    \
    "    base[l + 1] = nb\n"                                                                       \
    "    redis.call('HSET', m, 'b' .. l, nb)\n"                                                    \
    "  end\n"                                                                                      \
    "end\n"

/* ARGV[4] = lane. Returns {state, num, position, waiting, rate, epoch}.
 * The returning lane (tickets of an earlier epoch) is ahead of both lanes. */
static const char lua_join[] = LUA_PRELUDE
    "local l = tonumber(ARGV[4])\n"
    "local num = tail[l + 1]\n"
    "if num >= " NUM_LIMIT " then\n"
    "  return redis.error_reply('ERR einlass: ticket numbers of lane ' .. l .. ' reached 2^53')\n"
    "end\n"
    "tail[l + 1] = num + 1\n"
    "w[l + 1] = w[l + 1] + 1\n"
    "redis.call('SETBIT', live(CUR, l), off(l, num), 1)\n"
    "redis.call('SETBIT', live(PREV, l), off(l, num), 1)\n"
    "redis.call('HSET', m, 't' .. l, tail[l + 1], 'w' .. l, w[l + 1])\n"
    "local pos = w[2] + nret\n"
    "if l == 0 then pos = pos + w[1] end\n"
    "return {0, num, pos, w[1] + w[2] + nret, mrate, tonumber(ep)}\n";

/* ARGV[4] = lane, ARGV[5] = num, ARGV[6] = the ticket's epoch (0: a ticket
 * from before epochs, taken as this one's). Returns {state, num, position,
 * waiting, rate, epoch}. A reached ticket claims its pass while its
 * admission is held (at or above the claim horizon) and it is live.
 * A ticket of another epoch (Redis lost the room, or it was issued by a
 * memory store before a switch to Redis) joins the returning lane once: a
 * sorted set ordered by its old number (the priority lane's first), member
 * "epoch:lane:num", its state in a hash: w<seen ms> waiting, a<ms> reached
 * (claimable for claim_ms), x claimed, g dropped (not seen for 2 L). So a
 * copied cookie finds the same member: it takes no second place. */
static const char lua_check[] = LUA_PRELUDE
    "local l = tonumber(ARGV[4])\n"
    "local num = tonumber(ARGV[5])\n"
    "local tep = ARGV[6]\n"
    "local state, pos = 3, 0\n"
    "if tep ~= '0' and tep ~= ep then\n"
    "  local mem = tep .. ':' .. l .. ':' .. ARGV[5]\n"
    "  local v = redis.call('HGET', KEYS[17], mem)\n"
    "  if not v then\n"
    "    local sc = num\n"
    "    if l == 1 then sc = num - " NUM_LIMIT " end\n"
    "    redis.call('ZADD', KEYS[16], sc, mem)\n"
    "    nret = nret + 1\n"
    "    v = 'w'\n"
    "  end\n"
    "  local kind, at = string.match(v, '^(%a)(%d*)$')\n"
    "  if kind == 'w' then\n"
    "    redis.call('HSET', KEYS[17], mem, 'w' .. now)\n"
    "    state = 0\n"
    "    pos = redis.call('ZRANK', KEYS[16], mem) + 1\n"
    "  elseif kind == 'a' and now - tonumber(at) <= tonumber(ARGV[2]) then\n"
    "    redis.call('HSET', KEYS[17], mem, 'x')\n"
    "    redis.call('HINCRBY', m, 'adm', 1)\n"
    "    state = 1\n"
    "  elseif kind == 'x' then\n"
    "    state = 2\n"
    "  end\n"
    "  redis.call('PEXPIRE', KEYS[16], " EL_STR(RET_TTL_MS) ")\n"
    "  redis.call('PEXPIRE', KEYS[17], " EL_STR(RET_TTL_MS) ")\n"
    "  return {state, num, pos, w[1] + w[2] + nret, mrate, tonumber(tep)}\n"
    "end\n"
    "if num < tail[l + 1] and num >= base[l + 1] then\n"
    "  local live_now = redis.call('GETBIT', live(PREV, l), off(l, num)) == 1\n"
    "  if num < head[l + 1] then\n"
    "    if redis.call('GETBIT', KEYS[6 + l], off(l, num)) == 1 then\n"
    "      state = 2\n"
    "    elseif live_now then\n"
    "      local h = redis.call('HMGET', m, 'c' .. l, 'k' .. l)\n"
    "      if num >= (tonumber(h[1]) or 0) then\n"
    "        redis.call('SETBIT', KEYS[6 + l], off(l, num), 1)\n"
    "        redis.call('HINCRBY', m, 'adm', 1)\n"
    "        if num < (tonumber(h[2]) or 0) then redis.call('HINCRBY', m, 'kept', 1) end\n"
    "        state = 1\n"
    "      end\n"
    "    end\n"
    "  elseif live_now then\n"
    "    set_cur(l, num)\n"
    "    state = 0\n"
    "    pos = count_live(l, head[l + 1], num) + nret\n"
    "    if l == 0 then pos = pos + w[2] end\n"
    "  end\n"
    "end\n"
    "return {state, num, pos, w[1] + w[2] + nret, mrate, tonumber(ep)}\n";

/* ARGV[4] = rate, ARGV[5] = this instance's id (its heartbeat: the meter
 * runs on every instance about every 100 ms), ARGV[6..7] = heads to move up
 * to after a fallback, per lane (0: none; fallback.h), ARGV[8] = release
 * credits to cancel (the debt carries over, at most EL_METER_MAX_DEBT),
 * ARGV[9] = 1 to hold (el_meter_in in store.h), ARGV[10] = the epoch this
 * instance saw last (0: none). Returns {waiting, admitted_total, rate,
 * unclaimed, kept, h0, h1, t0, t1, c0, c1, w0, w1, instances, frac, epoch}.
 * An instance that saw another epoch finds that Redis lost the room: the
 * meter holds for 3 x poll_s from then (eg), so every ticket of the old
 * epoch comes back and takes its place in the returning lane, in its old
 * order, before anyone is admitted; then the returning lane is served
 * first (a member not seen for 2 L is dropped without charge; an unclaimed
 * one gives no credit back).
 * First the held admissions: entries 3 x poll_s old move the late mark,
 * entries claim_ms old leave the log and credit their unclaimed
 * admissions (the same as expire_held in store_memory.c). A hold (pause)
 * comes before the rate and the cancel: nobody is admitted, the fraction and
 * release credits are kept, and the held admissions neither expire nor move
 * the late mark (they stay claimable; their expiry waits for the resume), as
 * in the memory store. */
static const char lua_advance[] = LUA_PRELUDE
    "local rate = tonumber(ARGV[4]) or 0\n"
    "if rate ~= rate or rate < 0 or rate == math.huge then rate = 0 end\n"
    "local cancel = tonumber(ARGV[8]) or 0\n"
    "if cancel ~= cancel or cancel < 0 or cancel == math.huge then cancel = 0 end\n"
    "local hold = ARGV[9] == '1'\n"
    "local eg = tonumber(redis.call('HGET', m, 'eg') or '0') or 0\n"
    "if ARGV[10] ~= '0' and ARGV[10] ~= ep and eg == 0 then\n" /* Redis lost the room */
    "  eg = now + tonumber(ARGV[3])\n"
    "  redis.call('HSET', m, 'eg', eg)\n"
    "end\n"
    "if now < eg then hold = true end\n"
    "for l = 0, 1 do\n"
    "  local sk = tonumber(ARGV[6 + l]) or 0\n"
    "  if sk > head[l + 1] then\n"
    "    head[l + 1] = math.min(sk, tail[l + 1])\n"
    "    w[l + 1] = count_live(l, head[l + 1], tail[l + 1] - 1)\n"
    "  end\n"
    "end\n"
    "redis.call('ZADD', KEYS[15], now, ARGV[5])\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[15], '-inf', '(' .. (now - " EL_STR(EL_INSTANCE_TTL_MS) "))\n"
    "redis.call('PEXPIRE', KEYS[15], " EL_STR(EL_INSTANCE_TTL_MS) ")\n"
    "local ninst = redis.call('ZCARD', KEYS[15])\n"
    "local CLAIM, LATE = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local function entry(e)\n"
    "  local et, eh, en = string.match(e, '^(%d+):(%d+):(%d+)$')\n"
    "  return tonumber(et), tonumber(eh), tonumber(en)\n"
    "end\n"
    "local credit = 0\n"
    "if not hold then\n"
    "  for l = 0, 1 do\n"
    "    local key = KEYS[13 + l]\n"
    "    local h = redis.call('HMGET', m, 'c' .. l, 'k' .. l, 'q' .. l)\n"
    "    local cf, kf, q = tonumber(h[1]) or 0, tonumber(h[2]) or 0, tonumber(h[3]) or 0\n"
    "    local moved = false\n"
    "    while true do\n"
    "      local e = redis.call('LINDEX', key, q)\n"
    "      if not e then break end\n"
    "      local et, eh = entry(e)\n"
    "      if now < et + LATE then break end\n"
    "      kf, q, moved = eh, q + 1, true\n"
    "    end\n"
    "    while true do\n"
    "      local e = redis.call('LINDEX', key, 0)\n"
    "      if not e then break end\n"
    "      local et, eh, en = entry(e)\n"
    "      if now < et + CLAIM then break end\n"
    "      local claimed = 0\n"
    "      if eh > cf then\n"
    "        claimed = redis.call('BITCOUNT', KEYS[6 + l], off(l, cf), off(l, eh - 1), 'BIT')\n"
    "      end\n"
    "      if en > claimed then credit = credit + en - claimed end\n"
    "      cf = eh\n"
    "      if kf < eh then kf = eh end\n"
    "      if q > 0 then q = q - 1 end\n"
    "      redis.call('LPOP', key)\n"
    "      moved = true\n"
    "    end\n"
    "    if moved then redis.call('HSET', m, 'c' .. l, cf, 'k' .. l, kf, 'q' .. l, q) end\n"
    "  end\n"
    "end\n"
    "local hz = redis.call('HMGET', m, 'c0', 'c1')\n"
    "local chz = {tonumber(hz[1]) or 0, tonumber(hz[2]) or 0}\n"
    "if credit > 0 then redis.call('HINCRBY', m, 'unc', credit) end\n"
    "local a = redis.call('HMGET', m, 'frac', 'last', 'cred', 'bn', 'bms', 'adm', 'unc', 'kept')\n"
    "local frac = tonumber(a[1]) or 0\n"
    "local last = tonumber(a[2])\n"
    "local el = 0\n"
    "if last ~= nil and now > last then el = math.min(now - last, " EL_STR(EL_METER_MAX_GAP_MS) ") end\n"
    "local budget = frac + rate * el / 1000 + (tonumber(a[3]) or 0) + credit - cancel\n"
    "local n = 0\n"
    "if budget < 0 then\n" /* cancelled credits: the debt carries over */
    "  frac = math.max(budget, -" EL_STR(EL_METER_MAX_DEBT) ")\n"
    "else\n"
    "  n = math.floor(budget)\n"
    "  frac = budget - n\n"
    "end\n"
    "local cred = 0\n"
    "if hold then n = 0; frac = tonumber(a[1]) or 0; cred = tonumber(a[3]) or 0 end\n"
    "local admitted = 0\n"
    "while n > 0 and nret > 0 do\n" /* the returning lane first, in its order */
    "  local top = redis.call('ZRANGE', KEYS[16], 0, 0)\n"
    "  if not top[1] then nret = 0; break end\n"
    "  redis.call('ZREM', KEYS[16], top[1])\n"
    "  nret = nret - 1\n"
    "  local seen = tonumber(string.match(redis.call('HGET', KEYS[17], top[1]) or '', '^w(%d+)$'))\n"
    "  if seen and now - seen <= 2 * L then\n"
    "    redis.call('HSET', KEYS[17], top[1], 'a' .. now)\n"
    "    n = n - 1\n"
    "    admitted = admitted + 1\n"
    "  else\n"
    "    redis.call('HSET', KEYS[17], top[1], 'g')\n"
    "  end\n"
    "end\n"
    "for _, l in ipairs({1, 0}) do\n"
    "  local i = l + 1\n"
    "  local before = admitted\n"
    "  while n > 0 and w[i] > 0 do\n"
    "    local p = redis.call('BITPOS', live(PREV, l), 1, off(l, head[i]), off(l, tail[i] - 1), 'BIT')\n"
    "    if p < 0 then break end\n"
    "    p = p + base[i]\n"
    "    head[i] = p + 1\n"
    "    set_cur(l, p)\n"
    "    w[i] = w[i] - 1\n"
    "    n = n - 1\n"
    "    admitted = admitted + 1\n"
    "  end\n"
    "  if admitted > before then\n"
    "    local key, k = KEYS[13 + l], admitted - before\n"
    "    local e = redis.call('LINDEX', key, -1)\n"
    "    local et, _, en\n"
    "    if e then et, _, en = entry(e) end\n"
    "    if et and now >= et and now - et < 1000 then\n"
    "      redis.call('LSET', key, -1, string.format('%.0f:%.0f:%.0f', et, head[i], en + k))\n"
    "    else\n"
    "      redis.call('RPUSH', key, string.format('%.0f:%.0f:%.0f', now, head[i], k))\n"
    "    end\n"
    "  end\n"
    "  if w[i] <= 0 then w[i] = 0; head[i] = tail[i] end\n"
    "end\n"
    "local bn = tonumber(a[4]) or 0\n"
    "local bms = tonumber(a[5]) or 0\n"
    "local mr = tonumber(mrate) or 0\n"
    "if w[1] + w[2] + nret == 0 then\n"
    "  frac = 0\n"
    "else\n"
    "  bn = bn + admitted\n"
    "  bms = bms + el\n"
    "  if bms >= " EL_STR(EL_METER_WINDOW_MS) " then\n"
    "    local inst = bn * 1000 / bms\n"
    "    if mr == 0 then mr = inst else mr = mr + " EL_STR(EL_METER_ALPHA) " * (inst - mr) end\n"
    "    bn, bms = 0, 0\n"
    "  end\n"
    "end\n"
    "mrate = string.format('%.6f', mr)\n"
    "redis.call('HSET', m, 'h0', head[1], 'h1', head[2], 'w0', w[1], 'w1', w[2],\n"
    "  'frac', string.format('%.17g', frac), 'last', now, 'cred', cred, 'bn', bn, 'bms', bms,\n"
    "  'rate', mrate)\n"
    "return {w[1] + w[2] + nret, tonumber(a[6]) or 0, mrate, tonumber(a[7]) or 0,\n"
    "  tonumber(a[8]) or 0, head[1], head[2], tail[1], tail[2], chz[1], chz[2], w[1], w[2], ninst,\n"
    "  string.format('%.6f', frac), tonumber(ep)}\n";

/* ARGV[4] = pass id, ARGV[5] = ttl in ms. The first release of an id adds
 * one credit. Returns {1 if it did, else 0}. */
static const char lua_release[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local ttl = tonumber(ARGV[5])\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[12], '-inf', '(' .. (now - ttl))\n"
    "local added = redis.call('ZADD', KEYS[12], 'NX', now, ARGV[4])\n"
    "if added == 1 then redis.call('HINCRBY', KEYS[1], 'cred', 1) end\n"
    "redis.call('PEXPIRE', KEYS[12], ttl)\n"
    "return {added}\n";

/* ARGV[4] = cursor (ms). Returns {id, score, id, score, ...}, oldest first. */
static const char lua_revoked[] =
    "return redis.call('ZRANGEBYSCORE', KEYS[12], ARGV[4], '+inf', 'WITHSCORES', 'LIMIT', 0, "
    EL_STR(EL_STORE_REVOKED_MAX) ")\n";

/* KEYS[#KEYS] (after the room's) = the event's pre-queue hash (n: arrivals;
 * once drawn: base, seed as hex, "" for arrival order). ARGV[4] = op (enum el_pre_op),
 * ARGV[5] = the seed for a draw. Returns {drawn, i, n, base, h0, seed}.
 * The draw reserves lane 0's numbers [t0, t0 + n) as n joins would: set in
 * both bitmaps (whole bytes by SETRANGE), so the block counts need nothing
 * (joins above rL count nothing). ARGV[6] = no draw before this Redis time
 * (unix ms; the answer is then not drawn). The hash lives 14 days from its
 * last write. */
static const char lua_pre[] = LUA_PRELUDE
    "local ev, op = KEYS[#KEYS], tonumber(ARGV[4])\n"
    "local e = redis.call('HMGET', ev, 'n', 'base', 'seed')\n"
    "local n = tonumber(e[1]) or 0\n"
    "if e[2] then return {1, 0, n, tonumber(e[2]), head[1], e[3] or ''} end\n"
    "if op == 1 then return {0, 0, n, 0, head[1], ''} end\n"
    "if op == 0 then\n"
    "  redis.call('HSET', ev, 'n', n + 1)\n"
    "  redis.call('PEXPIRE', ev, 1209600000)\n"
    "  return {0, n, n + 1, 0, head[1], ''}\n"
    "end\n"
    "if now < (tonumber(ARGV[6]) or 0) then return {0, 0, n, 0, head[1], ''} end\n"
    "local a, b = tail[1], tail[1] + n\n"
    "local function setbits(key)\n"
    "  local x = a\n"
    "  while x < b and x % 8 ~= 0 do redis.call('SETBIT', key, off(0, x), 1); x = x + 1 end\n"
    "  while b - x >= 8 do\n"
    "    local k = math.min(math.floor((b - x) / 8), 65536)\n"
    "    redis.call('SETRANGE', key, math.floor(off(0, x) / 8), string.rep('\\255', k))\n"
    "    x = x + k * 8\n"
    "  end\n"
    "  while x < b do redis.call('SETBIT', key, off(0, x), 1); x = x + 1 end\n"
    "end\n"
    "if n > 0 then\n"
    "  setbits(live(CUR, 0))\n"
    "  setbits(live(PREV, 0))\n"
    "  w[1] = w[1] + n\n"
    "  redis.call('HSET', m, 't0', b, 'w0', w[1])\n"
    "end\n"
    "redis.call('HSET', ev, 'n', n, 'base', a, 'seed', ARGV[5])\n"
    "redis.call('PEXPIRE', ev, 1209600000)\n"
    "return {1, 0, n, a, head[1], ARGV[5]}\n";

enum op_kind {
    OP_JOIN = EL_STORE_OP_JOIN,
    OP_CHECK = EL_STORE_OP_CHECK,
    OP_ADVANCE = EL_STORE_OP_ADVANCE,
    OP_RELEASE = EL_STORE_OP_RELEASE,
    OP_REVOKED = EL_STORE_OP_REVOKED,
    OP_PRE = EL_STORE_OP_PRE,
    OP_NKINDS = EL_STORE_OP_COUNT
};

static const char *const scripts[OP_NKINDS] = {lua_join, lua_check, lua_advance, lua_release,
                                               lua_revoked, lua_pre};

struct rstore;

struct op {
    struct op *prev, *next;  /* s->pending, oldest first */
    struct rstore *s;        /* owner */
    enum op_kind kind;       /* which script */
    uint8_t lane;            /* join, check */
    uint64_t num;            /* check; release: the pass id; revoked: the cursor */
    uint32_t epoch;          /* check: the ticket's epoch (0: none) */
    int ttl_s;               /* release */
    struct el_meter_in meter; /* advance */
    uint64_t skip[2];        /* advance: heads to move up to (0: none) */
    el_store_place_cb pcb;   /* join, check */
    el_store_stats_cb scb;   /* advance (may be NULL) */
    el_store_revoked_cb rcb; /* revoked */
    el_store_pre_cb precb;   /* pre */
    uint32_t event;          /* pre: the event's id */
    enum el_pre_op pre_op;   /* pre: what to do */
    bool seeded;             /* pre: a draw with seed */
    uint8_t seed[EL_PRE_SEED_LEN]; /* ... this one */
    int64_t not_before_ms;   /* pre: no draw before this Redis time (unix ms) */
    void *arg;               /* for the callback */
    uint64_t deadline_ms;    /* el_now_ms() after which the link is dropped */
    bool done;               /* the user's callback ran */
    bool retried;            /* NOSCRIPT seen once: sent again with EVAL */
};

struct rstore {
    struct el_store base;          /* ops table: first member */
    struct event_base *evb;        /* this thread's loop */
    char *addr;                    /* the address for logs, without its password */
    struct el_redis_url url;       /* where and how to connect (with the password) */
    long long keep_ms;             /* generation length L (keep_place_s) */
    long long claim_ms;            /* an admission is held this long (<= L) */
    long long late_ms;             /* 3 x poll_s: a later claim is a place kept */
    int timeout_ms;                /* command (and connect) timeout */
    char inst[24];                 /* this instance's id in the inst set */
    uint32_t epoch;                /* the room's epoch seen last (0: none yet) */
    char *keys[NKEYS];             /* see the top of the file */
    char *ev_prefix;               /* "einlass:{R}:ev:": an event's pre-queue hash, by id */
    char sha[OP_NKINDS][41];       /* SHA1 hex of each script */
    redisAsyncContext *ac;         /* NULL while disconnected */
    bool up;                       /* connected, and Redis answered on this link */
    bool ever_up;                  /* up at least once */
    int backoff_ms;                /* next reconnect delay */
    struct event *reconnect_ev;    /* fires do_connect */
    struct event *timer_ev;        /* watches the oldest pending op / the connect */
    uint64_t connect_deadline_ms;  /* while connecting: give up after this */
    enum el_redis_link link;       /* for logs and /metrics */
    int setup_left;                /* AUTH/SELECT/PING replies still owed before up */
    struct evdns_base *dns;        /* made on the first host name */
    struct evdns_getaddrinfo_request *dns_req; /* a lookup in flight */
    bool resolving;                /* between evdns_getaddrinfo and its callback */
    bool dns_sentinel;             /* the lookup is for a sentinel, not the master */
    uint16_t dns_port;             /* port of the name being looked up */
    redisAsyncContext *sac;        /* a sentinel being asked, or NULL */
    size_t sentinel_i;             /* the sentinel to ask next */
    size_t sentinel_tries;         /* sentinels asked in this round */
    bool have_master;              /* master below holds the sentinels' answer */
    struct el_redis_hostport master; /* the master the sentinels named */
    bool relink;                   /* READONLY seen: drop the link at the next timer */
    struct op *head, *tail;        /* pending ops in hiredis */
    size_t nops;                   /* ops hiredis still holds */
    bool dead;                     /* el_store free was called */
    int depth;                     /* inside our code that may call back: do not destroy yet */
};

static void do_connect(struct rstore *s);
static void send_op(struct rstore *s, struct op *op);

static void destroy(struct rstore *s)
{
    for (int i = 0; i < NKEYS; i++) free(s->keys[i]);
    free(s->ev_prefix);
    free(s->addr);
    free(s);
}

/* Leave a section that may have called back (and so freed the store). True
 * if the store is gone now: the caller must not touch it again. */
static bool leave(struct rstore *s)
{
    if (--s->depth > 0 || !s->dead || s->nops > 0) return false;
    destroy(s);
    return true;
}

static void pending_unlink(struct rstore *s, struct op *op)
{
    if (op->prev) op->prev->next = op->next;
    else s->head = op->next;
    if (op->next) op->next->prev = op->prev;
    else s->tail = op->prev;
    op->prev = op->next = NULL;
}

static void arm_timer(struct rstore *s)
{
    if (s->dead || evtimer_pending(s->timer_ev, NULL)) return;
    uint64_t deadline;
    if (s->head) deadline = s->head->deadline_ms;
    else if (s->sac || s->resolving || (s->ac && !s->up)) deadline = s->connect_deadline_ms;
    else return;
    uint64_t now = el_now_ms();
    uint64_t ms = deadline > now ? deadline - now : 0;
    struct timeval tv = el_tv_ms(ms + 1); /* a ms late: the deadline has passed */
    evtimer_add(s->timer_ev, &tv);
}

static void schedule_reconnect(struct rstore *s)
{
    if (s->dead) return;
    struct timeval tv = el_tv_ms((uint64_t)s->backoff_ms);
    evtimer_add(s->reconnect_ev, &tv);
    int cap = s->link == EL_REDIS_LINK_AUTH_FAILED ? AUTH_BACKOFF_MAX_MS
              : s->url.kind == EL_REDIS_SENTINEL      ? SENTINEL_BACKOFF_MAX_MS
                                                      : BACKOFF_MAX_MS;
    s->backoff_ms = EL_MIN(s->backoff_ms * 2, cap);
}

/* A new link state: one line when it changes (rate-limited process-wide,
 * since every thread's store sees the same change). */
static void set_link(struct rstore *s, enum el_redis_link link, const char *why)
{
    enum el_redis_link was = s->link;
    s->link = link;
    if (link == was || s->dead) return;
    uint64_t now = el_now_ms();
    if (link == EL_REDIS_LINK_UP)
        el_redis_log_state(EL_REDIS_EV_CONNECTED, EL_LOG_NOTICE, now, "redis %s: connected%s%s%s",
                           s->addr, s->have_master ? " (master " : "",
                           s->have_master ? s->master.host : "", s->have_master ? ")" : "");
    else if (link == EL_REDIS_LINK_AUTH_FAILED)
        el_redis_log_state(EL_REDIS_EV_AUTH_FAILED, EL_LOG_WARN, now,
                           "redis %s: auth failed: %s (check redis_password_file and the user in "
                           "the address); retrying every %d s",
                           s->addr, why ? why : "refused", AUTH_BACKOFF_MAX_MS / 1000);
    else if (link == EL_REDIS_LINK_DOWN)
        el_redis_log_state(EL_REDIS_EV_DOWN, EL_LOG_WARN, now, "redis %s: down: %s", s->addr,
                           why ? why : "disconnected");
}

/* Let go of the context being set up or used; its late callbacks touch
 * nothing (ac->data = NULL). Every op hiredis holds calls back -1. */
static void drop_ac(struct rstore *s)
{
    redisAsyncContext *ac = s->ac;
    s->ac = NULL;
    s->up = false;
    s->setup_left = 0;
    if (ac) {
        ac->data = NULL;
        redisAsyncFree(ac);
    }
}

static void drop_sentinel(struct rstore *s)
{
    redisAsyncContext *sac = s->sac;
    s->sac = NULL;
    if (sac) {
        sac->data = NULL;
        redisAsyncFree(sac);
    }
}

static void cancel_dns(struct rstore *s)
{
    struct evdns_getaddrinfo_request *req = s->dns_req;
    s->dns_req = NULL;
    s->resolving = false;
    if (req) evdns_getaddrinfo_cancel(req); /* its callback sees EVUTIL_EAI_CANCEL */
}

/* Drop the link: every op hiredis holds calls back -1; reconnect later (a
 * Sentinel master is asked for again). */
static void link_down(struct rstore *s, const char *why)
{
    drop_ac(s);
    drop_sentinel(s);
    cancel_dns(s);
    s->have_master = false;
    if (s->link != EL_REDIS_LINK_AUTH_FAILED) set_link(s, EL_REDIS_LINK_DOWN, why);
    schedule_reconnect(s);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct rstore *s = arg;
    uint64_t now = el_now_ms();
    s->depth++;
    if (s->relink) {
        s->relink = false;
        link_down(s, "READONLY: the server is a replica now");
    } else if (s->head && s->head->deadline_ms <= now) {
        el_warn("redis %s: no answer within %d ms; reconnecting", s->addr, s->timeout_ms);
        link_down(s, "no answer in time");
    } else if ((s->sac || s->resolving || (s->ac && !s->up)) && s->connect_deadline_ms <= now) {
        link_down(s, s->sac ? "sentinel did not answer in time" : "connect timed out");
    }
    if (!leave(s)) arm_timer(s);
}

static void on_reconnect(evutil_socket_t fd, short what, void *arg)
{
    do_connect(arg);
}

static void load_scripts(struct rstore *s)
{
    for (int k = 0; k < OP_NKINDS; k++)
        redisAsyncCommand(s->ac, NULL, NULL, "SCRIPT LOAD %s", scripts[k]);
}

static void became_up(struct rstore *s)
{
    s->up = true;
    s->ever_up = true;
    s->backoff_ms = BACKOFF_MIN_MS;
    set_link(s, EL_REDIS_LINK_UP, NULL);
    load_scripts(s);
}

static bool auth_error(const char *e)
{
    return strncmp(e, "NOAUTH", 6) == 0 || strncmp(e, "WRONGPASS", 9) == 0 ||
           strncmp(e, "NOPERM", 6) == 0 || strstr(e, "invalid password") != NULL ||
           strstr(e, "invalid username-password") != NULL ||
           strstr(e, "no password is set") != NULL;
}

/* The answer to AUTH, SELECT or PING, sent before anything else. */
static void on_setup_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct rstore *s = ac->data;
    const redisReply *r = reply;
    if (s == NULL || s->ac != ac || r == NULL) return;
    if (r->type == REDIS_REPLY_ERROR) {
        char why[160];
        snprintf(why, sizeof(why), "%s", r->str);
        s->depth++;
        if (auth_error(why)) set_link(s, EL_REDIS_LINK_AUTH_FAILED, why);
        else s->link = EL_REDIS_LINK_CONNECTING; /* a SELECT refused: "down" below */
        link_down(s, why); /* freed by hiredis once this callback returns */
        if (!leave(s)) arm_timer(s);
        return;
    }
    if (--s->setup_left == 0) became_up(s);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct rstore *s = ac->data;
    if (s == NULL || s->ac != ac) return;
    if (status != REDIS_OK) {
        s->ac = NULL; /* hiredis frees it after this returns */
        s->up = false;
        s->setup_left = 0;
        s->have_master = false;
        set_link(s, EL_REDIS_LINK_DOWN, ac->errstr);
        schedule_reconnect(s);
        return;
    }
    el_debug("redis %s: connected, %d setup answers owed", s->addr, s->setup_left);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct rstore *s = ac->data;
    if (s == NULL || s->ac != ac) return;
    s->ac = NULL; /* hiredis frees it after this returns */
    s->up = false;
    s->setup_left = 0;
    s->have_master = false; /* Sentinel: ask again, a failover may be why */
    set_link(s, EL_REDIS_LINK_DOWN, ac->err ? ac->errstr : "disconnected");
    schedule_reconnect(s);
}

static void open_master(struct rstore *s, redisAsyncContext *ac)
{
    ac->data = s;
    redisLibeventAttach(ac, s->evb);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    s->ac = ac;
    s->up = false;
    /* AUTH, then SELECT, then PING, ahead of everything: an unauthenticated
     * script load would make the server close the link. */
    const struct el_redis_url *u = &s->url;
    s->setup_left = 0;
    if (u->password[0]) {
        if (u->user[0])
            redisAsyncCommand(ac, on_setup_reply, NULL, "AUTH %s %s", u->user, u->password);
        else
            redisAsyncCommand(ac, on_setup_reply, NULL, "AUTH %s", u->password);
        s->setup_left++;
    }
    if (u->db > 0) {
        redisAsyncCommand(ac, on_setup_reply, NULL, "SELECT %d", u->db);
        s->setup_left++;
    }
    redisAsyncCommand(ac, on_setup_reply, NULL, "PING"); /* NOAUTH when a password is missing */
    s->setup_left++;
}

static void on_sentinel_connect(const redisAsyncContext *ac, int status)
{
    struct rstore *s = ac->data;
    if (s == NULL || s->sac != ac || status == REDIS_OK) return;
    s->sac = NULL; /* hiredis frees it */
    event_active(s->reconnect_ev, EV_TIMEOUT, 1); /* the next sentinel, from the loop */
}

static void on_sentinel_disconnect(const redisAsyncContext *ac, int status)
{
    struct rstore *s = ac->data;
    if (s == NULL || s->sac != ac) return;
    s->sac = NULL;
    event_active(s->reconnect_ev, EV_TIMEOUT, 1);
}

static void on_sentinel_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct rstore *s = ac->data;
    const redisReply *r = reply;
    if (s == NULL || s->sac != ac || r == NULL) return;
    struct el_redis_hostport hp = {.port = 0};
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING &&
        r->element[0]->len < sizeof(hp.host)) {
        long port = strtol(r->element[1]->str, NULL, 10);
        if (port > 0 && port <= 65535) {
            memcpy(hp.host, r->element[0]->str, r->element[0]->len + 1);
            hp.port = (uint16_t)port;
        }
    }
    s->sac = NULL;
    ac->data = NULL;
    redisAsyncDisconnect(ac); /* after this callback: the short-lived link is done */
    if (hp.port == 0) {
        el_debug("redis %s: a sentinel does not know master %s", s->addr, s->url.master);
        event_active(s->reconnect_ev, EV_TIMEOUT, 1);
        return;
    }
    bool moved = strcmp(hp.host, s->master.host) != 0 || hp.port != s->master.port;
    s->master = hp;
    s->have_master = true;
    s->sentinel_tries = 0;
    if (moved)
        el_redis_log_state(EL_REDIS_EV_MASTER, EL_LOG_NOTICE, el_now_ms(),
                           "redis %s: sentinels name master %s:%u", s->addr, hp.host, hp.port);
    event_active(s->reconnect_ev, EV_TIMEOUT, 1); /* connect to it, from the loop */
}

static void open_sentinel(struct rstore *s, redisAsyncContext *ac)
{
    ac->data = s;
    redisLibeventAttach(ac, s->evb);
    redisAsyncSetConnectCallback(ac, on_sentinel_connect);
    redisAsyncSetDisconnectCallback(ac, on_sentinel_disconnect);
    s->sac = ac;
    redisAsyncCommand(ac, on_sentinel_reply, NULL, "SENTINEL get-master-addr-by-name %s",
                      s->url.master);
}

/* Connect to ip:port (a literal address) as the master or a sentinel. */
static void connect_ip(struct rstore *s, const char *ip, uint16_t port, bool sentinel)
{
    redisAsyncContext *ac = redisAsyncConnect(ip, port);
    if (ac == NULL || ac->err) {
        char why[160];
        snprintf(why, sizeof(why), "%s", ac ? ac->errstr : "out of memory");
        if (ac) redisAsyncFree(ac);
        if (sentinel) {
            event_active(s->reconnect_ev, EV_TIMEOUT, 1);
            return;
        }
        s->have_master = false;
        set_link(s, EL_REDIS_LINK_DOWN, why);
        schedule_reconnect(s);
        return;
    }
    if (sentinel) open_sentinel(s, ac);
    else open_master(s, ac);
}

static void on_resolved(int result, struct evutil_addrinfo *res, void *arg)
{
    struct rstore *s = arg;
    if (result == EVUTIL_EAI_CANCEL) return; /* the store let go of it (maybe freed) */
    s->resolving = false;
    s->dns_req = NULL;
    char ip[INET6_ADDRSTRLEN] = "";
    if (result == 0 && res) {
        const void *a = res->ai_family == AF_INET6
                            ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
                            : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
        inet_ntop(res->ai_family, a, ip, sizeof(ip));
    }
    if (res) evutil_freeaddrinfo(res);
    if (ip[0] == '\0') {
        char why[160];
        snprintf(why, sizeof(why), "cannot resolve the host name: %s",
                 evutil_gai_strerror(result));
        if (s->dns_sentinel) {
            event_active(s->reconnect_ev, EV_TIMEOUT, 1);
            return;
        }
        s->have_master = false;
        set_link(s, EL_REDIS_LINK_DOWN, why);
        schedule_reconnect(s);
        return;
    }
    connect_ip(s, ip, s->dns_port, s->dns_sentinel);
}

/* Connect to host:port, looking the name up first unless it is an address
 * (on this thread's loop: evdns reads /etc/hosts and resolv.conf, and never
 * blocks the thread as a getaddrinfo inside hiredis would). */
static void connect_host(struct rstore *s, const struct el_redis_hostport *hp, bool sentinel)
{
    unsigned char buf[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, hp->host, buf) == 1 || inet_pton(AF_INET6, hp->host, buf) == 1) {
        connect_ip(s, hp->host, hp->port, sentinel);
        return;
    }
    if (s->dns == NULL) s->dns = evdns_base_new(s->evb, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    if (s->dns == NULL) {
        set_link(s, EL_REDIS_LINK_DOWN, "cannot start the resolver");
        schedule_reconnect(s);
        return;
    }
    struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                    .ai_protocol = IPPROTO_TCP, .ai_flags = EVUTIL_AI_ADDRCONFIG};
    s->resolving = true;
    s->dns_sentinel = sentinel;
    s->dns_port = hp->port;
    struct evdns_getaddrinfo_request *req =
        evdns_getaddrinfo(s->dns, hp->host, NULL, &hints, on_resolved, s);
    if (s->resolving) s->dns_req = req; /* else it answered at once */
}

static void do_connect(struct rstore *s)
{
    if (s->dead || s->ac || s->sac || s->resolving) return;
    if (s->link != EL_REDIS_LINK_AUTH_FAILED && s->link != EL_REDIS_LINK_DOWN)
        s->link = EL_REDIS_LINK_CONNECTING;
    s->connect_deadline_ms = el_now_ms() + (uint64_t)s->timeout_ms;
    const struct el_redis_url *u = &s->url;
    if (u->kind == EL_REDIS_UNIX) {
        redisAsyncContext *ac = redisAsyncConnectUnix(u->path);
        if (ac == NULL || ac->err) {
            set_link(s, EL_REDIS_LINK_DOWN, ac ? ac->errstr : "out of memory");
            if (ac) redisAsyncFree(ac);
            schedule_reconnect(s);
            return;
        }
        open_master(s, ac);
    } else if (u->kind == EL_REDIS_TCP) {
        connect_host(s, &u->addr, false);
    } else if (s->have_master) {
        connect_host(s, &s->master, false);
    } else if (s->sentinel_tries >= u->nsentinels) {
        /* every sentinel asked in this round: wait, then start again */
        s->sentinel_tries = 0;
        set_link(s, EL_REDIS_LINK_DOWN, "no sentinel named the master");
        schedule_reconnect(s);
        return;
    } else {
        size_t i = s->sentinel_i++ % u->nsentinels;
        s->sentinel_tries++;
        connect_host(s, &u->sentinel[i], true);
    }
    arm_timer(s);
}

static void finish(struct op *op, int err, const struct el_place *p, const struct el_store_stats *st)
{
    if (op->done) return;
    op->done = true;
    if (op->kind == OP_ADVANCE) {
        if (op->scb) op->scb(op->arg, err, st);
    } else if (op->kind == OP_REVOKED) {
        op->rcb(op->arg, err, NULL, 0, op->num);
    } else if (op->kind == OP_PRE) {
        op->precb(op->arg, err, NULL);
    } else if (op->kind != OP_RELEASE) {
        op->pcb(op->arg, err, p);
    }
}

static bool int_elem(const redisReply *r, size_t i, long long *v)
{
    if (r->element[i]->type != REDIS_REPLY_INTEGER || r->element[i]->integer < 0) return false;
    *v = r->element[i]->integer;
    return true;
}

/* The revoked answer {id, score, ...}: ids to the caller, the last score as
 * the next cursor (inclusive: an id released in the same millisecond after
 * this read is not missed; ids seen again are harmless). */
static void deliver_revoked(struct op *op, const redisReply *r)
{
    uint64_t ids[EL_STORE_REVOKED_MAX];
    size_t n = 0;
    uint64_t next = op->num;
    if (r->elements % 2 != 0 || r->elements / 2 > EL_STORE_REVOKED_MAX) goto fail;
    for (size_t i = 0; i < r->elements; i += 2) {
        const redisReply *id = r->element[i], *sc = r->element[i + 1];
        if (id->type != REDIS_REPLY_STRING || sc->type != REDIS_REPLY_STRING) goto fail;
        ids[n++] = strtoull(id->str, NULL, 10);
        double score = strtod(sc->str, NULL);
        if (score > (double)next) next = (uint64_t)score;
    }
    op->done = true;
    op->rcb(op->arg, 0, ids, n, next);
    return;
fail:
    el_warn("redis %s: unexpected revoked answer", op->s->addr);
    finish(op, -1, NULL, NULL);
}


/* The pre answer {drawn, i, n, base, h0, seed hex or ""}. */
static void deliver_pre(struct op *op, const redisReply *r)
{
    struct el_pre p = {0};
    long long v[5];
    if (r->elements != 6 || r->element[5]->type != REDIS_REPLY_STRING) goto fail;
    for (size_t i = 0; i < 5; i++)
        if (!int_elem(r, i, &v[i])) goto fail;
    p.drawn = v[0] == 1;
    p.i = (uint64_t)v[1];
    p.n = (uint64_t)v[2];
    p.base = (uint64_t)v[3];
    p.head = (uint64_t)v[4];
    const char *hex = r->element[5]->str;
    if (p.drawn && r->element[5]->len == 2 * EL_PRE_SEED_LEN) {
        for (size_t i = 0; i < EL_PRE_SEED_LEN; i++) {
            unsigned b;
            if (sscanf(hex + 2 * i, "%2x", &b) != 1) goto fail;
            p.seed[i] = (uint8_t)b;
        }
        p.shuffled = true;
    } else if (p.drawn && r->element[5]->len != 0) {
        goto fail;
    }
    op->done = true;
    op->precb(op->arg, 0, &p);
    return;
fail:
    el_warn("redis %s: unexpected pre-queue answer", op->s->addr);
    finish(op, -1, NULL, NULL);
}

static double str_elem(const redisReply *r, size_t i)
{
    const redisReply *e = r->element[i];
    if (e->type != REDIS_REPLY_STRING) return 0;
    double v = strtod(e->str, NULL);
    return v > 0 ? v : 0;
}

const char *const el_store_op_names[EL_STORE_OP_COUNT] = {"join", "check", "advance", "release",
                                                          "revoked", "pre"};

/* Script answers that were errors or malformed, per op, every thread. */
static _Atomic uint64_t op_errors[OP_NKINDS];

uint64_t el_store_errors(enum el_store_op op)
{
    return (unsigned)op < OP_NKINDS ? atomic_load(&op_errors[op]) : 0;
}

/* The room's epoch in an answer: a change from the one seen before means
 * Redis lost the room (one line, rate-limited process-wide). */
static void saw_epoch(struct rstore *s, const redisReply *r, size_t i)
{
    long long ep;
    if (r->elements <= i || !int_elem(r, i, &ep) || ep == 0 || ep > UINT32_MAX) return;
    if (s->epoch != 0 && s->epoch != (uint32_t)ep)
        el_redis_log_state(EL_REDIS_EV_EPOCH, EL_LOG_WARN, el_now_ms(),
                           "redis %s: epoch changed (%u -> %lld): Redis lost the room's data; "
                           "tickets of the old epoch return ahead of new ones, in their old order",
                           s->addr, s->epoch, ep);
    s->epoch = (uint32_t)ep;
}

/* Parse the script's answer and call back. */
static void deliver(struct op *op, const redisReply *r)
{
    long long a, b, c, d;
    if (r->type != REDIS_REPLY_ARRAY) goto fail;
    if (op->kind == OP_RELEASE) {
        finish(op, 0, NULL, NULL);
        return;
    }
    if (op->kind == OP_REVOKED) {
        deliver_revoked(op, r);
        return;
    }
    if (op->kind == OP_PRE) {
        deliver_pre(op, r);
        return;
    }
    if (op->kind == OP_ADVANCE) {
        struct el_store_stats st;
        long long v[9];
        if (r->elements != 16 || !int_elem(r, 0, &a) || !int_elem(r, 1, &b) ||
            !int_elem(r, 3, &c) || !int_elem(r, 4, &d))
            goto fail;
        for (size_t i = 0; i < 9; i++)
            if (!int_elem(r, 5 + i, &v[i])) goto fail;
        for (int l = 0; l < 2; l++) {
            st.head[l] = (uint64_t)v[l];
            st.tail[l] = (uint64_t)v[2 + l];
            st.claim[l] = (uint64_t)v[4 + l];
            st.lane_waiting[l] = (uint64_t)v[6 + l];
        }
        st.instances = (unsigned)EL_MIN(v[8], 1 << 20);
        const redisReply *fr = r->element[14]; /* below 0: a debt of cancelled credits */
        st.frac = fr->type == REDIS_REPLY_STRING ? strtod(fr->str, NULL) : 0;
        if (!isfinite(st.frac)) st.frac = 0;
        st.waiting = (uint64_t)a;
        st.admitted_total = (uint64_t)b;
        st.rate = str_elem(r, 2);
        st.unclaimed_total = (uint64_t)c;
        st.kept_total = (uint64_t)d;
        saw_epoch(op->s, r, 15);
        finish(op, 0, NULL, &st);
        return;
    }
    struct el_place p = {.lane = op->lane};
    long long ep;
    if (r->elements != 6 || !int_elem(r, 0, &a) || a > EL_PLACE_GONE || !int_elem(r, 1, &b) ||
        !int_elem(r, 2, &c) || !int_elem(r, 3, &d) || !int_elem(r, 5, &ep) || ep > UINT32_MAX)
        goto fail;
    p.epoch = (uint32_t)ep;
    if (op->kind == OP_JOIN || ep == 0 || (uint32_t)ep != op->epoch) saw_epoch(op->s, r, 5);
    p.state = (enum el_place_state)a;
    p.num = (uint64_t)b;
    p.position = (uint64_t)c;
    p.waiting = (uint64_t)d;
    p.rate = str_elem(r, 4);
    finish(op, 0, &p, NULL);
    return;
fail:
    atomic_fetch_add(&op_errors[op->kind], 1);
    el_redis_log_state(EL_REDIS_EV_STORE_ERROR, EL_LOG_WARN, el_now_ms(),
                       "redis %s: %s failed: %s%s (counted in einlass_store_errors_total)",
                       op->s->addr, el_store_op_names[op->kind],
                       r->type == REDIS_REPLY_ERROR ? "" : "unexpected script answer",
                       r->type == REDIS_REPLY_ERROR ? r->str : "");
    finish(op, -1, NULL, NULL);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    struct op *op = privdata;
    struct rstore *s = op->s;
    const redisReply *r = reply;
    pending_unlink(s, op);
    s->nops--;
    s->depth++;
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "READONLY", 8) == 0 && s->ac == ac &&
        !s->dead && !s->relink) {
        s->relink = true; /* a replica now (failover): drop the link, ask the sentinels */
        event_active(s->timer_ev, EV_TIMEOUT, 1);
    }
    if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0 && !op->retried &&
        !op->done && s->ac == ac && !s->dead) {
        op->retried = true;
        load_scripts(s);
        send_op(s, op);
    } else {
        if (r == NULL) finish(op, -1, NULL, NULL);
        else deliver(op, r);
        free(op);
    }
    leave(s);
}

/* Hand op to hiredis (EVALSHA, or EVAL once NOSCRIPT was seen). */
static void send_op(struct rstore *s, struct op *op)
{
    const char *argv[2 + 1 + NKEYS + 1 + 10];
    size_t len[EL_ARRAY_LEN(argv)];
    char nums[8][32];
    char evkey[256], seed_hex[2 * EL_PRE_SEED_LEN + 1];
    int n = 0;
    argv[n++] = op->retried ? "EVAL" : "EVALSHA";
    argv[n++] = op->retried ? scripts[op->kind] : s->sha[op->kind];
    char nkeys[8];
    snprintf(nkeys, sizeof(nkeys), "%d", NKEYS + (op->kind == OP_PRE ? 1 : 0));
    argv[n++] = nkeys;
    for (int i = 0; i < NKEYS; i++) argv[n++] = s->keys[i];
    if (op->kind == OP_PRE) {
        snprintf(evkey, sizeof(evkey), "%s%08x", s->ev_prefix, (unsigned)op->event);
        argv[n++] = evkey;
    }
    snprintf(nums[3], sizeof(nums[3]), "%lld", s->keep_ms);
    argv[n++] = nums[3];
    snprintf(nums[4], sizeof(nums[4]), "%lld", s->claim_ms);
    argv[n++] = nums[4];
    snprintf(nums[0], sizeof(nums[0]), "%lld", s->late_ms);
    argv[n++] = nums[0];
    if (op->kind == OP_ADVANCE) {
        double rate = op->meter.rate, cancel = op->meter.cancel_credits;
        snprintf(nums[1], sizeof(nums[1]), "%.6f", rate > 0 && isfinite(rate) ? rate : 0);
        argv[n++] = nums[1];
        argv[n++] = s->inst;
        snprintf(nums[5], sizeof(nums[5]), "%llu", (unsigned long long)op->skip[0]);
        argv[n++] = nums[5];
        snprintf(nums[6], sizeof(nums[6]), "%llu", (unsigned long long)op->skip[1]);
        argv[n++] = nums[6];
        snprintf(nums[7], sizeof(nums[7]), "%.6f", cancel > 0 && isfinite(cancel) ? cancel : 0);
        argv[n++] = nums[7];
        argv[n++] = op->meter.hold ? "1" : "0";
        snprintf(nums[2], sizeof(nums[2]), "%u", s->epoch);
        argv[n++] = nums[2];
    } else if (op->kind == OP_RELEASE) {
        snprintf(nums[1], sizeof(nums[1]), "%llu", (unsigned long long)op->num);
        argv[n++] = nums[1];
        snprintf(nums[2], sizeof(nums[2]), "%lld", (long long)op->ttl_s * 1000);
        argv[n++] = nums[2];
    } else if (op->kind == OP_REVOKED) {
        snprintf(nums[1], sizeof(nums[1]), "%llu", (unsigned long long)op->num);
        argv[n++] = nums[1];
    } else if (op->kind == OP_PRE) {
        snprintf(nums[1], sizeof(nums[1]), "%d", (int)op->pre_op);
        argv[n++] = nums[1];
        seed_hex[0] = '\0';
        for (size_t i = 0; op->seeded && i < EL_PRE_SEED_LEN; i++)
            snprintf(seed_hex + 2 * i, 3, "%02x", op->seed[i]);
        argv[n++] = seed_hex;
        snprintf(nums[2], sizeof(nums[2]), "%lld", (long long)op->not_before_ms);
        argv[n++] = nums[2];
    } else {
        snprintf(nums[1], sizeof(nums[1]), "%u", op->lane);
        argv[n++] = nums[1];
        if (op->kind == OP_CHECK) {
            snprintf(nums[2], sizeof(nums[2]), "%llu", (unsigned long long)op->num);
            argv[n++] = nums[2];
            snprintf(nums[5], sizeof(nums[5]), "%u", op->epoch);
            argv[n++] = nums[5];
        }
    }
    for (int i = 0; i < n; i++) len[i] = strlen(argv[i]);
    if (s->ac == NULL || redisAsyncCommandArgv(s->ac, on_reply, op, n, argv, len) != REDIS_OK) {
        finish(op, -1, NULL, NULL);
        free(op);
        return;
    }
    op->prev = s->tail;
    op->next = NULL;
    if (s->tail) s->tail->next = op;
    else s->head = op;
    s->tail = op;
    s->nops++;
    arm_timer(s);
}

static void submit(struct rstore *s, struct op *op)
{
    op->s = s;
    op->deadline_ms = el_now_ms() + (uint64_t)s->timeout_ms;
    send_op(s, op);
}

static void redis_join(struct el_store *st, uint8_t lane, uint64_t now_ms, el_store_place_cb cb,
                       void *arg)
{
    struct op *op = el_calloc(1, sizeof(*op));
    op->kind = OP_JOIN;
    op->lane = lane & 1;
    op->pcb = cb;
    op->arg = arg;
    submit((struct rstore *)st, op);
}

static void redis_check(struct el_store *st, uint8_t lane, uint64_t num, uint32_t epoch,
                        uint64_t now_ms, el_store_place_cb cb, void *arg)
{
    struct op *op = el_calloc(1, sizeof(*op));
    op->kind = OP_CHECK;
    op->lane = lane & 1;
    op->num = num;
    op->epoch = epoch;
    op->pcb = cb;
    op->arg = arg;
    submit((struct rstore *)st, op);
}

static void redis_advance(struct el_store *st, const struct el_meter_in *in, uint64_t now_ms,
                          el_store_stats_cb cb, void *arg)
{
    struct op *op = el_calloc(1, sizeof(*op));
    op->kind = OP_ADVANCE;
    op->meter = *in;
    op->scb = cb;
    op->arg = arg;
    submit((struct rstore *)st, op);
}

static void redis_advance_skip(struct el_store *st, const struct el_meter_in *in,
                               const uint64_t skip[2], el_store_stats_cb cb, void *arg)
{
    struct op *op = el_calloc(1, sizeof(*op));
    op->kind = OP_ADVANCE;
    op->meter = *in;
    op->skip[0] = skip[0];
    op->skip[1] = skip[1];
    op->scb = cb;
    op->arg = arg;
    submit((struct rstore *)st, op);
}

static void redis_release(struct el_store *st, uint64_t id, int ttl_s, uint64_t now_ms)
{
    struct op *op = el_calloc(1, sizeof(*op));
    op->kind = OP_RELEASE;
    op->num = id;
    op->ttl_s = EL_MAX(ttl_s, 1);
    submit((struct rstore *)st, op);
}

static void redis_revoked(struct el_store *st, uint64_t cursor, el_store_revoked_cb cb,
                          void *arg)
{
    struct op *op = el_calloc(1, sizeof(*op));
    op->kind = OP_REVOKED;
    op->num = cursor;
    op->rcb = cb;
    op->arg = arg;
    submit((struct rstore *)st, op);
}

static void redis_pre(struct el_store *st, uint32_t event, enum el_pre_op pre_op,
                      const uint8_t *seed, int64_t not_before_ms, uint64_t now_ms,
                      el_store_pre_cb cb, void *arg)
{
    struct op *op = el_calloc(1, sizeof(*op));
    op->kind = OP_PRE;
    op->event = event;
    op->pre_op = pre_op;
    op->seeded = seed != NULL;
    op->not_before_ms = not_before_ms > 0 ? not_before_ms : 0;
    if (seed) memcpy(op->seed, seed, EL_PRE_SEED_LEN);
    op->precb = cb;
    op->arg = arg;
    (void)now_ms;
    submit((struct rstore *)st, op);
}

static void redis_free(struct el_store *st)
{
    struct rstore *s = (struct rstore *)st;
    if (s == NULL) return;
    s->dead = true;
    event_free(s->reconnect_ev);
    event_free(s->timer_ev);
    cancel_dns(s);
    drop_sentinel(s);
    if (s->dns) evdns_base_free(s->dns, 0);
    s->dns = NULL;
    redisAsyncContext *ac = s->ac;
    s->ac = NULL;
    s->depth++;
    if (ac) {
        ac->data = NULL;
        redisAsyncFree(ac); /* deferred by hiredis when inside one of its callbacks */
    }
    leave(s);
}

static const struct el_store_ops redis_ops = {
    .name = "redis",
    .join = redis_join,
    .check = redis_check,
    .advance = redis_advance,
    .advance_skip = redis_advance_skip,
    .release = redis_release,
    .revoked = redis_revoked,
    .pre = redis_pre,
    .free = redis_free,
};

static void sha1_hex(const char *src, char out[41])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_Digest(src, strlen(src), md, &mdlen, EVP_sha1(), NULL);
    for (unsigned i = 0; i < 20; i++) snprintf(out + 2 * i, 3, "%02x", md[i]);
}

struct el_store *el_store_redis_new(struct event_base *base, const struct el_store_params *p)
{
    static const char *const suffix[NKEYS] = {"meter",   "live:0:0", "live:0:1", "live:1:0",
                                              "live:1:1", "x:0",     "x:1",      "blk:0:0",
                                              "blk:0:1",  "blk:1:0", "blk:1:1",
                                              "rel",      "held:0",  "held:1",  "inst",
                                              "ret",      "ret:st"};
    struct rstore *s = el_calloc(1, sizeof(*s));
    s->base.ops = &redis_ops;
    s->evb = base;
    const char *why = NULL;
    if (el_redis_url_parse(p->redis && *p->redis ? p->redis : "127.0.0.1:6379", &s->url, &why) ==
        -1) {
        el_warn("redis: bad address (%s); using 127.0.0.1:6379", why); /* the config checks it */
        el_redis_url_parse("127.0.0.1:6379", &s->url, &why);
    }
    if (p->redis_password && *p->redis_password && s->url.password[0] == '\0')
        snprintf(s->url.password, sizeof(s->url.password), "%s", p->redis_password);
    char disp[1024];
    el_redis_url_display(&s->url, disp, sizeof(disp));
    s->addr = el_strdup(disp);
    s->late_ms = (long long)(p->poll_s > 0 ? p->poll_s : 1) * 3000;
    s->keep_ms = p->keep_ms > 0 ? p->keep_ms : s->late_ms;
    s->claim_ms = p->claim_ms > 0 ? EL_MIN((long long)p->claim_ms, s->keep_ms) : s->keep_ms;
    s->timeout_ms = p->timeout_ms > 0 ? p->timeout_ms : 1000;
    for (int i = 0; i < NKEYS; i++)
        s->keys[i] = el_sprintf("einlass:{%s}:%s", p->room ? p->room : "", suffix[i]);
    s->ev_prefix = el_sprintf("einlass:{%s}:ev:", p->room ? p->room : "");
    for (int k = 0; k < OP_NKINDS; k++) sha1_hex(scripts[k], s->sha[k]);
    uint64_t id;
    if (RAND_bytes((unsigned char *)&id, sizeof(id)) != 1) id = el_now_us() ^ (uintptr_t)s;
    snprintf(s->inst, sizeof(s->inst), "%llu", (unsigned long long)id);
    s->backoff_ms = BACKOFF_MIN_MS;
    s->link = EL_REDIS_LINK_CONNECTING; /* a first failure is a change: logged */
    s->reconnect_ev = evtimer_new(base, on_reconnect, s);
    s->timer_ev = evtimer_new(base, on_timer, s);
    do_connect(s);
    return &s->base;
}

bool el_store_redis_starting(struct el_store *st)
{
    const struct rstore *s = (const struct rstore *)st;
    return !s->ever_up && s->ac != NULL && !s->up;
}

bool el_store_redis_up(struct el_store *st)
{
    const struct rstore *s = (const struct rstore *)st;
    return s->up && s->ac != NULL;
}

uint32_t el_store_redis_epoch(struct el_store *st)
{
    return ((const struct rstore *)st)->epoch;
}

enum el_redis_link el_store_redis_link(struct el_store *st)
{
    const struct rstore *s = (const struct rstore *)st;
    return s->link;
}
