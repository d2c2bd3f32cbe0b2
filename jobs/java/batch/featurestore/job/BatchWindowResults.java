package featurestore.job;

import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.CRC32;
import org.apache.flink.api.common.operators.ProcessingTimeService.ProcessingTimeCallback;
import org.apache.flink.runtime.state.KeyGroupRangeAssignment;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.types.Row;
import org.apache.flink.types.RowKind;

/**
 * The window operator's results, handed to the Python writer in batches: one element per bucket per watermark
 * (from each upstream subtask), not one per result.
 *
 * <p>Input: the changelog of a window group's query ({@code jobs.sql.aggregate_sql}): entity_id, window_start,
 * window_end (TIMESTAMP(3) in UTC), revision, then one column per feature. {@code -U} and {@code -D} rows are
 * dropped here (the writer writes new values only); the others wait in memory, grouped by bucket
 * ({@code crc32(UTF-8 entity_id) mod buckets}, the writer's key), in their order of arrival.
 *
 * <p>Output: {@code Row(key, Row(entity_ids String[], starts long[], ends long[], revisions long[], reach long, one
 * array per feature))}, {@code reach} the latest window end (epoch ms) of any result this operator has had so far,
 * of any bucket ({@code Long.MIN_VALUE} before the first; not kept over a restore), the key of bucket {@code b} the smallest whole number whose key group Flink assigns to the writer's
 * subtask {@code b} ({@link #bucketKeys}: keyed by the bucket number itself, two buckets could share one subtask
 * and leave another without work), window bounds in epoch milliseconds, each feature's array of its column's class ({@code valueTypes}:
 * long, double, string or boolean; nulls kept): the shape PyFlink's {@code key_by} gives a keyed Python function.
 * Columns, not an array of rows: PyFlink's thread mode hands a Python function an array of rows as the same row
 * repeated (its converter reuses one row object).
 *
 * <p>What waits is emitted, every bucket's as one element (at most {@code maxRows} results each), before this
 * operator forwards a watermark (the window operator emits a window's results just before the watermark that
 * closes it, so the writer sees them before that watermark fires its timers), before each checkpoint barrier
 * (so a checkpoint never holds a result here: this operator has no state), when the input ends, and at most
 * {@code maxDelayMs} after the first result waiting (a late update arrives between watermarks; an idle source
 * may send none for a long time).
 *
 * <p>Before it forwards a watermark, this operator also hands an empty element (no results: a marker) to every
 * bucket whose latest element carried an older {@code reach} (none before the first result), so each writer key
 * hears of the latest reach also when none of its entities had a result: the writer records its progress from
 * the watermark, bounded by the reach (design §5.5), and a key whose entities are quiet does not hold its
 * stream's online progress back. A bucket gets at most one marker per {@code maxDelayMs} with a watermark (a
 * replay closes windows with nearly every watermark); a marker held back by that bound goes out with the timer,
 * at most {@code maxDelayMs} later, after the watermark (the writer then records its progress from the
 * watermark it has passed). The final watermark's markers are never held back.
 */
public final class BatchWindowResults extends AbstractStreamOperator<Row>
        implements OneInputStreamOperator<Row, Row>, ProcessingTimeCallback {
    private static final long serialVersionUID = 1L;

    private final int buckets;
    private final String[] valueTypes;
    private final int maxRows;
    private final long maxDelayMs;
    private final int maxParallelism;
    private transient List<List<Row>> waiting;
    private transient long[] sentReach; // per bucket: the reach its latest element carried
    private transient long[] sentAt; // per bucket: when (processing time, ms) its latest element went out
    private transient boolean[] owed; // per bucket: a marker held back by the bound on markers, sent by the timer
    private transient long reach; // the latest window end of any result so far (Long.MIN_VALUE: none yet)
    private transient boolean timerSet;
    private transient CRC32 crc;
    private transient int[] keys;

    public BatchWindowResults(int buckets, String valueTypes, int maxRows, long maxDelayMs) {
        this(buckets, valueTypes, maxRows, maxDelayMs, 0);
    }

    /**
     * {@code maxParallelism}: the writer's (the job sets it on the writer explicitly, so both sides agree after a
     * restore too); 0 to take the configured one, else Flink's default for {@code buckets}.
     */
    public BatchWindowResults(int buckets, String valueTypes, int maxRows, long maxDelayMs, int maxParallelism) {
        if (maxParallelism < 0) {
            throw new IllegalArgumentException("maxParallelism must be 0 (Flink's) or positive");
        }
        this.maxParallelism = maxParallelism;
        if (buckets < 1 || maxRows < 1 || maxDelayMs < 1) {
            throw new IllegalArgumentException("buckets, maxRows and maxDelayMs must be positive");
        }
        this.buckets = buckets;
        this.valueTypes = valueTypes.isEmpty() ? new String[0] : valueTypes.split(",");
        for (String type : this.valueTypes) {
            newColumn(type, 0);
        }
        this.maxRows = maxRows;
        this.maxDelayMs = maxDelayMs;
    }

    @Override
    public void open() throws Exception {
        super.open();
        waiting = new ArrayList<>(buckets);
        for (int i = 0; i < buckets; i++) {
            waiting.add(new ArrayList<>());
        }
        crc = new CRC32();
        sentReach = new long[buckets];
        java.util.Arrays.fill(sentReach, Long.MIN_VALUE); // no marker before the first result
        sentAt = new long[buckets];
        java.util.Arrays.fill(sentAt, Long.MIN_VALUE / 2); // long ago, without overflowing now - sentAt
        owed = new boolean[buckets];
        reach = Long.MIN_VALUE;
        // The writer runs at this operator's parallelism (one bucket per subtask): its max parallelism is the
        // configured one, else Flink's default for that parallelism.
        int configured = maxParallelism > 0 ? maxParallelism : getExecutionConfig().getMaxParallelism();
        keys = bucketKeys(
                buckets, configured > 0 ? configured : KeyGroupRangeAssignment.computeDefaultMaxParallelism(buckets));
    }

    /**
     * Each bucket's key: for bucket {@code b}, the smallest whole number whose key (PyFlink's {@code key_by} wraps
     * it in a one-field {@code Row}) Flink assigns to subtask {@code b} of {@code buckets} at {@code maxParallelism}.
     */
    public static int[] bucketKeys(int buckets, int maxParallelism) {
        int[] keys = new int[buckets];
        boolean[] found = new boolean[buckets];
        for (int k = 0, left = buckets; left > 0; k++) {
            Row key = new Row(1);
            key.setField(0, k);
            int subtask = KeyGroupRangeAssignment.assignKeyToParallelOperator(key, maxParallelism, buckets);
            if (!found[subtask]) {
                found[subtask] = true;
                keys[subtask] = k;
                left--;
            }
        }
        return keys;
    }

    /** The writer's key of an entity: Python's {@code zlib.crc32(str(entity_id).encode()) % buckets}. */
    public static int bucket(String entityId, int buckets, CRC32 crc) {
        crc.reset();
        crc.update((entityId == null ? "None" : entityId).getBytes(StandardCharsets.UTF_8));
        return (int) (crc.getValue() % buckets);
    }

    /** A window bound as epoch milliseconds: the job's SQL session runs in UTC. */
    public static long epochMillis(Object bound) {
        if (bound instanceof LocalDateTime) {
            return ((LocalDateTime) bound).toInstant(ZoneOffset.UTC).toEpochMilli();
        }
        if (bound instanceof Instant) {
            return ((Instant) bound).toEpochMilli();
        }
        throw new IllegalArgumentException("a window bound is a TIMESTAMP(3), not " + bound);
    }

    @Override
    public void processElement(StreamRecord<Row> element) throws Exception {
        Row row = element.getValue();
        RowKind kind = row.getKind();
        if (kind == RowKind.UPDATE_BEFORE || kind == RowKind.DELETE) {
            return;
        }
        if (row.getArity() != 4 + valueTypes.length) {
            throw new IllegalArgumentException("a window result has 4 columns and one per feature ("
                    + valueTypes.length + "), not " + row.getArity());
        }
        reach = Math.max(reach, epochMillis(row.getField(2)));
        int bucket = bucket((String) row.getField(0), buckets, crc);
        List<Row> rows = waiting.get(bucket);
        rows.add(row);
        if (rows.size() >= maxRows) {
            emit(bucket);
        }
        setTimer();
    }

    private void setTimer() {
        if (!timerSet) {
            timerSet = true;
            getProcessingTimeService().registerTimer(
                    getProcessingTimeService().getCurrentProcessingTime() + maxDelayMs, this);
        }
    }

    private static Object[] newColumn(String valueType, int size) {
        switch (valueType) {
            case "long":
                return new Long[size];
            case "double":
                return new Double[size];
            case "string":
                return new String[size];
            case "boolean":
                return new Boolean[size];
            default:
                throw new IllegalArgumentException("a feature column is long, double, string or boolean, not "
                        + valueType);
        }
    }

    private void emit(int bucket) {
        emit(bucket, false);
    }

    /** The bucket's waiting results as one element; with {@code marker}, an empty element when none waits. */
    private void emit(int bucket, boolean marker) {
        List<Row> rows = waiting.get(bucket);
        int n = rows.size();
        if (n == 0 && !marker) {
            return;
        }
        String[] entityIds = new String[n];
        long[] starts = new long[n];
        long[] ends = new long[n];
        long[] revisions = new long[n];
        Object[][] values = new Object[valueTypes.length][];
        for (int f = 0; f < valueTypes.length; f++) {
            values[f] = newColumn(valueTypes[f], n);
        }
        for (int i = 0; i < n; i++) {
            Row row = rows.get(i);
            entityIds[i] = (String) row.getField(0);
            starts[i] = epochMillis(row.getField(1));
            ends[i] = epochMillis(row.getField(2));
            revisions[i] = ((Number) row.getField(3)).longValue();
            for (int f = 0; f < valueTypes.length; f++) {
                values[f][i] = row.getField(4 + f);
            }
        }
        Row columns = new Row(5 + valueTypes.length);
        columns.setField(0, entityIds);
        columns.setField(1, starts);
        columns.setField(2, ends);
        columns.setField(3, revisions);
        columns.setField(4, reach);
        for (int f = 0; f < valueTypes.length; f++) {
            columns.setField(5 + f, values[f]);
        }
        output.collect(new StreamRecord<>(Row.of(keys[bucket], columns)));
        sentReach[bucket] = reach;
        sentAt[bucket] = getProcessingTimeService().getCurrentProcessingTime();
        owed[bucket] = false;
        rows.clear();
    }

    private void emitAll() {
        for (int bucket = 0; bucket < buckets; bucket++) {
            emit(bucket);
        }
    }

    @Override
    public void onProcessingTime(long time) {
        timerSet = false;
        for (int bucket = 0; bucket < buckets; bucket++) {
            emit(bucket, owed[bucket]);
        }
    }

    @Override
    public void processWatermark(Watermark mark) throws Exception {
        long now = getProcessingTimeService().getCurrentProcessingTime();
        boolean last = mark.getTimestamp() == Long.MAX_VALUE;
        for (int bucket = 0; bucket < buckets; bucket++) {
            boolean marker = sentReach[bucket] != reach;
            if (marker && !last && waiting.get(bucket).isEmpty() && now - sentAt[bucket] < maxDelayMs) {
                // At most one marker per bucket per maxDelayMs (a replay closes windows with nearly every
                // watermark): this one goes with the timer, after the watermark.
                owed[bucket] = true;
                setTimer();
            } else {
                emit(bucket, marker);
            }
        }
        super.processWatermark(mark);
    }

    @Override
    public void prepareSnapshotPreBarrier(long checkpointId) throws Exception {
        emitAll();
        super.prepareSnapshotPreBarrier(checkpointId);
    }

    @Override
    public void finish() throws Exception {
        emitAll();
        super.finish();
    }
}
