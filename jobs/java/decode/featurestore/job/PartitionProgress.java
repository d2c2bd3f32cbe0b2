package featurestore.job;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * One source subtask's event-time progress per Kafka partition, kept across a restore ({@link DecodeOperator}).
 *
 * <p>The Kafka source makes a watermark per partition, {@code max(watermark expression)} over the partition's
 * records (the source's SQL: {@code kafka_ts - max_out_of_orderness}, or the epoch minus it for a record further
 * ahead than the decoder's future limit), marks a partition idle after {@code idle_timeout} without a record (at
 * a periodic watermark check one to three auto-watermark intervals later, not at once: {@link #entries} counts
 * from the record itself, design §5.3), and
 * a subtask's watermark is the lowest of its partitions' that are not idle, never going back. This class keeps the
 * same per-partition maximum from the records the decode operator sees ({@link #observe}), and when each partition
 * last had one, so a checkpoint can store them ({@link #entries}, with the watermark the subtask had forwarded);
 * restored ({@link #restore}), {@link #combined} is what a run that never stopped has: the larger of the
 * subtask's stored watermark and the lowest, over its partitions that were not idle at the checkpoint or have had
 * a record since, of the larger of each one's stored and replayed progress; never lower than it has been. Without
 * this a subtask restored with several partitions would only know their combined watermark at the checkpoint,
 * which is lower than that once the replay moves the partitions unevenly.
 *
 * <p>State entries are {@code [subtask index, parallelism, partition, progress, idle]} (idle 1 or 0), and one
 * {@code [subtask index, parallelism, -1, watermark]} per subtask for the watermark it had forwarded. Restored at
 * the parallelism that wrote them, a subtask takes its own (Flink gives it the same partitions again) and
 * {@link #combined} follows the replay; at another parallelism, the lowest of the subtasks' watermarks as a fixed
 * floor. An older job's entries ({@code [index, parallelism, watermark]}, one per subtask) count as subtask
 * watermarks. An entry without progress, or of no partition, is passed over.
 */
public final class PartitionProgress {
    /** No progress: no record yet (a watermark below every event time). */
    public static final long NONE = Long.MIN_VALUE;
    /** The partition field of a subtask's own entry (the watermark it had forwarded). */
    public static final long SUBTASK = -1L;

    private final long outOfOrdernessMs;
    private final long maxFutureMs;
    private final long idleTimeoutMs;
    private final long openedMs; // when this subtask started (or was restored), by {@link #monotonicMs}
    private long[] seen = new long[0]; // per partition: the highest candidate since start (NONE: no record)
    private long[] lastMs = new long[0]; // per partition: when its last record was read, by {@link #monotonicMs}
    private long[] restored = new long[0]; // per partition: the stored progress (NONE: not this subtask's)
    private boolean[] idleAtRestore = new boolean[0]; // per partition: idle at the checkpoint restored from
    private boolean following; // restored per partition: combined() follows the replay
    private long floor = NONE; // the restored subtask watermark, or at another parallelism the lowest of them
    private long reached = NONE; // the highest combined() answered: the source's watermark never goes back

    public PartitionProgress(long outOfOrdernessMs, long maxFutureMs, long idleTimeoutMs, long openedMs) {
        this.outOfOrdernessMs = outOfOrdernessMs;
        this.maxFutureMs = maxFutureMs;
        this.idleTimeoutMs = idleTimeoutMs;
        this.openedMs = openedMs;
    }

    /** The source's watermark expression for a record at {@code recordMs} read at {@code nowMs}. */
    public long candidate(long recordMs, long nowMs) {
        long time = recordMs > nowMs + maxFutureMs ? 0L : recordMs; // far ahead: the epoch, i.e. nothing
        return time - outOfOrdernessMs;
    }

    /**
     * Milliseconds of a clock that only moves forward (its origin arbitrary), for how long a partition has had no
     * record: Flink's source judges idleness by such a clock, and by the wall clock a step of the system's time
     * (NTP) made a partition the source still waited for idle in a checkpoint, or an idle one not.
     */
    public static long monotonicMs() {
        return System.nanoTime() / 1_000_000L;
    }

    /**
     * A record of {@code partition} at {@code recordMs} was read at {@code nowMs} by the wall clock (for the
     * far-future rule) and at {@code readMs} by {@link #monotonicMs} (for idleness); its own lateness decided.
     */
    public void observe(int partition, long recordMs, long nowMs, long readMs) {
        if (partition < 0) {
            return;
        }
        if (partition >= seen.length) {
            int size = Math.max(partition + 1, seen.length * 2);
            seen = grown(seen, size, NONE);
            lastMs = grown(lastMs, size, 0L);
        }
        long value = candidate(recordMs, nowMs);
        if (value > seen[partition]) {
            seen[partition] = value;
        }
        lastMs[partition] = readMs;
    }

    /** Whether a restore gave this subtask any progress ({@link #combined} is then not NONE). */
    public boolean restoredAny() {
        return following || floor != NONE;
    }

    /**
     * The subtask's watermark as a run that never stopped has it, as far as the restore tells (NONE when nothing
     * was restored): the larger of the restored floor and, with per-partition entries, the lowest over the
     * partitions restored not idle, or read since, of the larger of each one's stored and replayed progress;
     * never lower than an earlier answer.
     */
    public long combined() {
        long value = floor;
        if (following) {
            long lowest = Long.MAX_VALUE;
            int n = Math.max(seen.length, restored.length);
            for (int p = 0; p < n; p++) {
                long stored = p < restored.length ? restored[p] : NONE;
                long replayed = p < seen.length ? seen[p] : NONE;
                boolean idle = replayed == NONE && (stored == NONE || idleAtRestore[p]);
                if (!idle) {
                    lowest = Math.min(lowest, Math.max(stored, replayed));
                }
            }
            if (lowest != Long.MAX_VALUE) {
                value = Math.max(value, lowest);
            }
        }
        reached = Math.max(reached, value);
        return reached;
    }

    /**
     * This subtask's entries for a checkpoint taken at {@code nowMs} ({@link #monotonicMs}): one per partition it read or was restored
     * with (idle: no record for the idle timeout, or none since it started and that long ago, or idle at the
     * restore and nothing since), and its own with {@code forwarded}, the highest watermark it has sent
     * downstream (NONE if none; never the end of input).
     */
    public List<long[]> entries(int index, int parallelism, long forwarded, long nowMs) {
        List<long[]> out = new ArrayList<>();
        int n = Math.max(seen.length, restored.length);
        for (int p = 0; p < n; p++) {
            long stored = p < restored.length ? restored[p] : NONE;
            long replayed = p < seen.length ? seen[p] : NONE;
            if (stored == NONE && replayed == NONE) {
                continue;
            }
            boolean idle = replayed != NONE
                    ? nowMs - lastMs[p] >= idleTimeoutMs
                    : idleAtRestore[p] || nowMs - openedMs >= idleTimeoutMs;
            out.add(new long[] {index, parallelism, p, Math.max(stored, replayed), idle ? 1 : 0});
        }
        out.add(new long[] {index, parallelism, SUBTASK, Math.max(forwarded, floor)});
        return out;
    }

    /** Takes back the entries of a checkpoint (all subtasks'), for subtask {@code index} of {@code parallelism}. */
    public void restore(List<long[]> entries, int index, int parallelism) {
        if (entries.isEmpty()) {
            return; // a checkpoint without entries (an older job's): nothing to go on
        }
        if (entries.get(0)[1] != parallelism) { // partitions move between subtasks: the lowest subtask watermark
            long lowest = Long.MAX_VALUE;
            for (long[] entry : entries) {
                if (entry.length == 3 || entry[2] == SUBTASK) {
                    lowest = Math.min(lowest, entry[entry.length == 3 ? 2 : 3]);
                }
            }
            floor = lowest == Long.MAX_VALUE ? NONE : lowest;
            reached = floor;
            return;
        }
        for (long[] entry : entries) {
            if (entry[0] != index) {
                continue;
            }
            if (entry.length == 3 || entry[2] == SUBTASK) {
                floor = Math.max(floor, entry[entry.length == 3 ? 2 : 3]);
                continue;
            }
            if (entry[2] < 0 || entry[2] > Integer.MAX_VALUE || entry[3] == NONE) {
                continue; // no partition, or no progress: nothing to go on
            }
            int partition = (int) entry[2];
            if (partition >= restored.length) {
                int size = Math.max(partition + 1, restored.length * 2);
                restored = grown(restored, size, NONE);
                idleAtRestore = Arrays.copyOf(idleAtRestore, size);
            }
            restored[partition] = Math.max(restored[partition], entry[3]);
            idleAtRestore[partition] = entry.length > 4 && entry[4] != 0;
            following = true;
        }
        reached = NONE;
    }

    private static long[] grown(long[] values, int size, long fill) {
        int old = values.length;
        long[] out = Arrays.copyOf(values, size);
        Arrays.fill(out, old, size, fill);
        return out;
    }
}
