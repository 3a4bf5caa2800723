// Every statement waitlock sends to PostgreSQL, in one place, so that the lock space they
// define can be read (and reproduced by other programs) here.
//
// A slot of NAME is the session advisory lock pg_advisory_lock(CLASSID, key(NAME, 'slotK')),
// the two-int4 form: classid 1463897163 (0x57414C4B, "WALK", the record's magic) and objid
// the first 4 bytes of md5('NAME.slotK') as a big-endian integer with the top bit cleared,
// so that it reads the same as a signed int4 argument and as pg_locks' unsigned objid.
// Advisory locks belong to one database: the database in the URL is part of the lock space.
// A semaphore's waiters queue on key 'NAME.queue' (a turnstile); releases notify the channel
// 'waitlock_' || key('NAME.queue'). A waiter that found the lock busy describes itself in
// waitlock.waiters; --list shows a row only while its session waits in pg_locks.
import { CryptoHasher } from "bun";
import type { HolderDescription } from "../../backend";

export const CLASSID = 0x57414c4b;

/** SQL for the objid of `what` ('NAME.slotK' or 'NAME.queue'), a text expression. */
const key = (what: string) => `(('x' || left(md5(${what}), 8))::bit(32)::int & 2147483647)`;
const slotKey = (name: string, slot: string) => key(`${name} || '.slot' || ${slot}`);
const queueKey = (name: string) => key(`${name} || '.queue'`);

/** The same derivation in JavaScript: objid of 'NAME.slotK' or 'NAME.queue'. */
export function lockKey(what: string): number {
  return new CryptoHasher("md5").update(what).digest().readUInt32BE(0) & 0x7fffffff;
}

/** The LISTEN/NOTIFY channel on which releases of NAME are announced. */
export const releaseChannel = (name: string): string => `waitlock_${lockKey(`${name}.queue`)}`;

/** pg_locks rows of waitlock's lock space in this database. */
const OURS = `locktype = 'advisory' AND classid = ${CLASSID} AND objsubid = 2 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`;

/** Once per session: who we are, and whether the settings asked for at connect arrived. */
export const IDENTIFY = `SELECT pg_backend_pid() AS pid, pg_is_in_recovery() AS standby, current_setting('tcp_user_timeout') AS user_timeout`;

/**
 * The ways the server may show a tcp_user_timeout of `ms` milliseconds (SHOW picks the
 * largest unit that divides it); anything else means the startup settings did not arrive.
 */
export const userTimeoutForms = (ms: number): string[] => [String(ms), `${ms}ms`, ...(ms % 1000 === 0 ? [`${ms / 1000}s`] : [])];

/**
 * Try slots in order (preferred first, then 0..N-1), taking the first free one and nothing
 * else: the filter runs row by row under LIMIT 1. $1 NAME, $2 N, $3 preferred slot.
 * `unlockQueue` also leaves the turnstile in the same step.
 */
export function trySlots(shared: boolean, unlockQueue: boolean): string {
  const fn = shared ? "pg_try_advisory_lock_shared" : "pg_try_advisory_lock";
  return `SELECT s AS slot, pg_backend_pid() AS pid${unlockQueue ? `, pg_advisory_unlock(${CLASSID}, ${queueKey("$1::text")}) AS left_queue` : ""}
  FROM (SELECT $3::int AS s UNION ALL SELECT g FROM generate_series(0, $2::int - 1) g WHERE g <> $3::int) o
  WHERE ${fn}(${CLASSID}, ${slotKey("$1::text", "s")}) LIMIT 1`;
}

/**
 * Wait in the server's queue for slot 0 of a mutex (FIFO; a conflicting request queued first
 * is served first). lock_timeout withdraws the request at the deadline ($2, e.g. '300ms';
 * '0' waits for ever); it is set back to 0 once granted, and a failed statement undoes it.
 * $1 NAME.
 */
export function waitSlot0(shared: boolean): string {
  const fn = shared ? "pg_advisory_lock_shared" : "pg_advisory_lock";
  return `SELECT set_config('lock_timeout', $2::text, false) AS timeout, ${fn}(${CLASSID}, ${slotKey("$1::text", "0")}) AS granted,
  set_config('lock_timeout', '0', false) AS reset, pg_backend_pid() AS pid`;
}

/**
 * waitSlot0 for a described waiter, and once granted its holder description in the same
 * round trip: statements in one Query message, the wait and the description in one
 * transaction, the description planned only after the wait was granted (so no table lock is
 * held while waiting), and not run at all when the wait failed (lock_timeout). The
 * description is the waiter's row moved to waitlock.holders as slot 0, with the token drawn
 * then (as DESCRIBE). With `waiter`, the waiter's row is written first (DESCRIBE_WAITER)
 * and committed before the wait, so that --list shows it meanwhile. No parameters: the
 * lock's objid (lockKey of 'NAME.slot0'), `lockTimeout` ('0' or digits and 'ms') and text
 * (textLiteral) are written in. The last statement returns the token, or no row when this
 * session has no waiter row.
 */
export function waitSlot0Described(shared: boolean, name: string, lockTimeout: string, waiter?: HolderDescription): string {
  const fn = shared ? "pg_advisory_lock_shared" : "pg_advisory_lock";
  const described = waiter
    ? `${describeWaiter(
        `${textLiteral(name)}, 1, ${shared}, ${textLiteral(waiter.host)}, ${Math.trunc(waiter.pid)}, ${Math.trunc(waiter.owner)}, ${Math.trunc(waiter.uid)}, ${textLiteral(waiter.user)}, ${textLiteral(waiter.command)}`,
      )};
COMMIT;
`
    : "";
  return `${described}SELECT set_config('lock_timeout', '${lockTimeout}', false) AS timeout, ${fn}(${CLASSID}, ${lockKey(`${name}.slot0`)}) AS granted, set_config('lock_timeout', '0', false) AS reset;
WITH waited AS (DELETE FROM waitlock.waiters WHERE backend_pid = pg_backend_pid() RETURNING *)
  ${DESCRIBED_COLUMNS}
  SELECT backend_pid, name, 0, slots, shared, pg_current_xact_id()::text::bigint, host, pid, owner, uid, username, command FROM waited
  ${REDESCRIBED}`;
}

/** Take the turnstile of NAME ($1) if nobody is in it: a semaphore's first try. */
export const TRY_QUEUE = `SELECT pg_try_advisory_lock(${CLASSID}, ${queueKey("$1::text")}) AS got`;

/** Wait for the turnstile of NAME ($1), as waitSlot0 does ($2 lock_timeout). */
export const WAIT_QUEUE = `SELECT set_config('lock_timeout', $2::text, false) AS timeout, pg_advisory_lock(${CLASSID}, ${queueKey("$1::text")}) AS granted,
  set_config('lock_timeout', '0', false) AS reset`;

/** Leave the turnstile of NAME ($1). */
export const LEAVE_QUEUE = `SELECT pg_advisory_unlock(${CLASSID}, ${queueKey("$1::text")}) AS left_queue`;

/** The holder and waiter descriptions. Only the tables need privileges (see the man page). */
export const SETUP = `BEGIN;
SELECT pg_advisory_xact_lock(${CLASSID}, 0);
CREATE SCHEMA IF NOT EXISTS waitlock;
CREATE TABLE IF NOT EXISTS waitlock.holders (
  backend_pid integer PRIMARY KEY,
  name text NOT NULL,
  slot integer NOT NULL,
  slots integer NOT NULL,
  shared boolean NOT NULL,
  token bigint NOT NULL,
  host text NOT NULL,
  pid integer NOT NULL,
  owner integer NOT NULL,
  uid integer NOT NULL,
  username text NOT NULL,
  command text NOT NULL,
  acquired timestamptz NOT NULL DEFAULT now(),
  request text CHECK (request IN ('stop', 'release'))
);
CREATE TABLE IF NOT EXISTS waitlock.waiters (
  backend_pid integer PRIMARY KEY,
  name text NOT NULL,
  slots integer NOT NULL,
  shared boolean NOT NULL,
  host text NOT NULL,
  pid integer NOT NULL,
  owner integer NOT NULL,
  uid integer NOT NULL,
  username text NOT NULL,
  command text NOT NULL,
  since timestamptz NOT NULL DEFAULT clock_timestamp()
);
COMMIT`;

const DESCRIBED_COLUMNS = `INSERT INTO waitlock.holders (backend_pid, name, slot, slots, shared, token, host, pid, owner, uid, username, command)`;
const REDESCRIBED = `ON CONFLICT (backend_pid) DO UPDATE SET name = EXCLUDED.name, slot = EXCLUDED.slot, slots = EXCLUDED.slots, shared = EXCLUDED.shared,
    token = EXCLUDED.token, host = EXCLUDED.host, pid = EXCLUDED.pid, owner = EXCLUDED.owner, uid = EXCLUDED.uid,
    username = EXCLUDED.username, command = EXCLUDED.command, acquired = now(), request = NULL
  RETURNING token::text AS token`;

/**
 * Describe this session's lease ($1 NAME, $2 slot, $3 N, $4 shared, $5 host, $6 pid, $7 owner,
 * $8 uid, $9 user, $10 command), replacing the row of an ended session that had this backend
 * PID. Returns the fencing token: this transaction's ID, drawn after the lock was granted (so
 * a later holder of NAME always draws a larger one), 64 bits with the epoch, never reused,
 * also across a restart once committed (synchronous_commit is on for the session).
 */
export const DESCRIBE = `${DESCRIBED_COLUMNS}
  VALUES (pg_backend_pid(), $1::text, $2::int, $3::int, $4::bool, pg_current_xact_id()::text::bigint, $5::text, $6::int, $7::int, $8::int, $9::text, $10::text)
  ${REDESCRIBED}`;

/** Text written into a statement as a literal that nothing in it can end: its UTF-8 in hex. */
const textLiteral = (s: string): string => `convert_from(decode('${Buffer.from(s, "utf8").toString("hex")}', 'hex'), 'UTF8')`;

/**
 * A mutex's first try with the holder's description (DESCRIBE's row, token drawn after the
 * try took slot 0), for the session's first round trip with IDENTIFY (no parameters: the
 * text written in as textLiteral, the objid of 'NAME.slot0' as lockKey gives it). The try
 * runs only when IDENTIFY would pass (no standby, the startup settings arrived: no pooler
 * holds the session), so that a session waitlock is about to refuse never took a lock; CASE
 * keeps that order, where a WHERE's conditions have none. A missing table or privilege
 * fails the statement before the try. Returns the token when taken, no row when busy.
 */
export function tryMutexDescribed(shared: boolean, name: string, h: HolderDescription, userTimeoutMs: number): string {
  const fn = shared ? "pg_try_advisory_lock_shared" : "pg_try_advisory_lock";
  const forms = userTimeoutForms(userTimeoutMs).map((f) => `'${f}'`).join(", ");
  const [pid, owner, uid] = [h.pid, h.owner, h.uid].map((n) => Math.trunc(n));
  return `${DESCRIBED_COLUMNS}
  SELECT pg_backend_pid(), ${textLiteral(name)}, 0, 1, ${shared}, pg_current_xact_id()::text::bigint, ${textLiteral(h.host)}, ${pid}, ${owner}, ${uid}, ${textLiteral(h.user)}, ${textLiteral(h.command)}
  WHERE CASE WHEN NOT pg_is_in_recovery() AND current_setting('tcp_user_timeout') IN (${forms}) THEN ${fn}(${CLASSID}, ${lockKey(`${name}.slot0`)}) ELSE false END
  ${REDESCRIBED}`;
}

/**
 * After a granted wait: the same as DESCRIBE, and this session's waiter description dropped
 * in the same statement.
 */
export const DESCRIBE_AFTER_WAIT = `WITH waited AS (DELETE FROM waitlock.waiters WHERE backend_pid = pg_backend_pid())
  ${DESCRIBE}`;

/**
 * Describe this session as a waiter of NAME ($1 NAME, $2 N, $3 shared, $4 host, $5 pid, $6
 * owner, $7 uid, $8 user, $9 command), joining the queue now (clock_timestamp(): --list
 * orders a name's waiters by it, pg_locks showing no queue order). Replaces the row of an
 * ended session that had this backend PID, and drops those of other ended sessions (killed
 * waiters). Nothing here needs to survive a crash: the commit does not wait for the disk.
 */
export const DESCRIBE_WAITER = describeWaiter(`$1::text, $2::int, $3::bool, $4::text, $5::int, $6::int, $7::int, $8::text, $9::text`);

/** DESCRIBE_WAITER with `values` (NAME, N, shared, host, pid, owner, uid, user, command) as SQL. */
function describeWaiter(values: string): string {
  return `WITH gone AS (DELETE FROM waitlock.waiters w WHERE w.backend_pid <> pg_backend_pid()
    AND NOT EXISTS (SELECT 1 FROM pg_stat_get_activity(w.backend_pid)))
  INSERT INTO waitlock.waiters (backend_pid, name, slots, shared, host, pid, owner, uid, username, command)
  VALUES (pg_backend_pid(), ${values})
  ON CONFLICT (backend_pid) DO UPDATE SET name = EXCLUDED.name, slots = EXCLUDED.slots, shared = EXCLUDED.shared, host = EXCLUDED.host,
    pid = EXCLUDED.pid, owner = EXCLUDED.owner, uid = EXCLUDED.uid, username = EXCLUDED.username, command = EXCLUDED.command, since = clock_timestamp()
  RETURNING set_config('synchronous_commit', 'off', true) AS async`;
}

/** The heartbeat: still the same session, and has --done asked anything of it? */
export const HEARTBEAT = `SELECT pg_backend_pid() AS pid, (SELECT request FROM waitlock.holders WHERE backend_pid = pg_backend_pid()) AS request`;

/**
 * Release slot `slot` of NAME, say so to waiters and to --done, drop this session's
 * description and those of NAME left by ended sessions (holders killed with SIGKILL): one
 * round trip, the unlock first (a mutex's next holder is granted at once, not at the
 * commit). The NOTIFY is sent at the commit, which does not wait for the disk: nothing here
 * needs to survive a crash. No parameters: the objids (lockKey of 'NAME.slotK' and
 * 'NAME.queue') and NAME (textLiteral) are written in.
 */
export function release(shared: boolean, name: string, slot: number): string {
  const fn = shared ? "pg_advisory_unlock_shared" : "pg_advisory_unlock";
  return `SELECT ${fn}(${CLASSID}, ${lockKey(`${name}.slot${slot}`)}) AS released, pg_notify('waitlock_${lockKey(`${name}.queue`)}', '') AS notified,
  set_config('synchronous_commit', 'off', true) AS async;
DELETE FROM waitlock.holders WHERE backend_pid = pg_backend_pid();
DELETE FROM waitlock.holders h WHERE h.name = ${textLiteral(name)} AND NOT EXISTS (SELECT 1 FROM pg_stat_get_activity(h.backend_pid))`;
}

/** How many of the N ($2) slots of NAME ($1) a request could take: nobody holds them, or (a shared request, $3) only readers. */
export const FREE_SLOTS = `WITH held AS MATERIALIZED (SELECT objid FROM pg_locks WHERE ${OURS} AND granted AND NOT ($3::bool AND mode = 'ShareLock'))
  SELECT count(*)::int AS free FROM generate_series(0, $2::int - 1) s WHERE ${slotKey("$1::text", "s")}::oid NOT IN (SELECT objid FROM held)`;

const LOCKS = `locks AS MATERIALIZED (SELECT pid, objid::bigint AS objid, mode = 'ShareLock' AS shared FROM pg_locks WHERE ${OURS} AND granted)`;
const ROW = `h.name, h.slot, h.slots, h.token::text AS token, h.host, h.pid, h.owner, h.uid, h.username, h.command,
  extract(epoch FROM h.acquired)::float8 AS acquired, h.request`;

/**
 * Held slots with their descriptions ($1 NAME or NULL for every name): status 'active'; with
 * $2 also descriptions whose session holds nothing any more ('stale') and waitlock-space
 * locks that nobody described ('unknown', a turnstile of a described NAME excepted).
 */
export const LIST = `WITH ${LOCKS},
  described AS (SELECT h.*, l.shared AS held_shared FROM waitlock.holders h
    LEFT JOIN locks l ON l.pid = h.backend_pid AND l.objid = ${slotKey("h.name", "h.slot")})
  SELECT 'active' AS status, d.backend_pid, d.held_shared AS shared, ${ROW.replaceAll("h.", "d.")}, host(a.client_addr) AS client_addr
    FROM described d LEFT JOIN pg_stat_activity a ON a.pid = d.backend_pid
    WHERE d.held_shared IS NOT NULL AND ($1::text IS NULL OR d.name = $1::text)
  UNION ALL
  SELECT 'stale', d.backend_pid, d.shared, ${ROW.replaceAll("h.", "d.")}, NULL
    FROM described d WHERE $2::bool AND d.held_shared IS NULL AND ($1::text IS NULL OR d.name = $1::text)
  UNION ALL
  SELECT 'unknown', l.pid, l.shared, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, host(a.client_addr)
    FROM locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
    WHERE $2::bool AND $1::text IS NULL
    AND NOT EXISTS (SELECT 1 FROM waitlock.holders h WHERE h.backend_pid = l.pid AND l.objid IN (${slotKey("h.name", "h.slot")}, ${queueKey("h.name")}))
    AND NOT EXISTS (SELECT 1 FROM waitlock.holders h WHERE l.objid = ${queueKey("h.name")})`;

/** Held slots when the description table does not exist (nothing is described). */
export const LIST_UNDESCRIBED = `WITH ${LOCKS}
  SELECT 'unknown' AS status, l.pid AS backend_pid, l.shared, l.objid, host(a.client_addr) AS client_addr
  FROM locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid`;

/**
 * The described waiters of NAME ($1, or NULL for every name) whose session waits now: in
 * pg_locks, an ungranted request for slot 0 (a mutex) or the turnstile, or the turnstile
 * held (a semaphore's first waiter, looking for a free slot). In arrival order per name.
 */
export const LIST_WAITERS = `WITH waiting AS MATERIALIZED (SELECT pid, objid::bigint AS objid, granted FROM pg_locks WHERE ${OURS})
  SELECT w.backend_pid, w.name, w.slots, w.shared, w.host, w.pid, w.owner, w.uid, w.username, w.command,
    extract(epoch FROM w.since)::float8 AS since, row_number() OVER (PARTITION BY w.name ORDER BY w.since, w.backend_pid)::int AS position
  FROM waitlock.waiters w
  WHERE ($1::text IS NULL OR w.name = $1::text) AND EXISTS (SELECT 1 FROM waiting l WHERE l.pid = w.backend_pid
    AND (l.objid = ${queueKey("w.name")} OR (NOT l.granted AND w.slots = 1 AND l.objid = ${slotKey("w.name", "0")})))
  ORDER BY w.name, position`;

/**
 * Ask the holders of NAME ($1) to stop their work, or only to release when the holder is on
 * host $2 and its owner is one of $3 (the asker and its ancestors). Returns who was asked.
 */
export const REQUEST_DONE = `WITH ${LOCKS}
  UPDATE waitlock.holders h SET request = CASE WHEN h.host = $2::text AND h.owner = ANY($3::int[]) THEN 'release' ELSE 'stop' END
  WHERE h.name = $1::text AND EXISTS (SELECT 1 FROM locks l WHERE l.pid = h.backend_pid AND l.objid = ${slotKey("h.name", "h.slot")})
  RETURNING 'active' AS status, h.backend_pid, h.shared, ${ROW}, NULL::text AS client_addr`;

/** Which of these backends ($2) still hold a slot of NAME ($1)? */
export const STILL_HELD = `WITH ${LOCKS}
  SELECT h.backend_pid FROM waitlock.holders h JOIN locks l ON l.pid = h.backend_pid AND l.objid = ${slotKey("h.name", "h.slot")}
  WHERE h.name = $1::text AND h.backend_pid = ANY($2::int[])`;
