package featurestore.job;

import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.time.LocalDateTime;
import java.time.ZoneOffset;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.CRC32;
import org.apache.flink.api.common.operators.ProcessingTimeService.ProcessingTimeCallback;
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
 * <p>Output: {@code Row(bucket, Row(entity_ids String[], starts long[], ends long[], revisions long[], one array per
 * feature))}, window bounds in epoch milliseconds, each feature's array of its column's class ({@code valueTypes}:
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
 */
public final class BatchWindowResults extends AbstractStreamOperator<Row>
        implements OneInputStreamOperator<Row, Row>, ProcessingTimeCallback {
    private static final long serialVersionUID = 1L;

    private final int buckets;
    private final String[] valueTypes;
    private final int maxRows;
    private final long maxDelayMs;
    private transient List<List<Row>> waiting;
    private transient boolean timerSet;
    private transient CRC32 crc;

    public BatchWindowResults(int buckets, String valueTypes, int maxRows, long maxDelayMs) {
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
        int bucket = bucket((String) row.getField(0), buckets, crc);
        List<Row> rows = waiting.get(bucket);
        rows.add(row);
        if (rows.size() >= maxRows) {
            emit(bucket);
        }
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
        List<Row> rows = waiting.get(bucket);
        int n = rows.size();
        if (n == 0) {
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
        Row columns = new Row(4 + valueTypes.length);
        columns.setField(0, entityIds);
        columns.setField(1, starts);
        columns.setField(2, ends);
        columns.setField(3, revisions);
        for (int f = 0; f < valueTypes.length; f++) {
            columns.setField(4 + f, values[f]);
        }
        output.collect(new StreamRecord<>(Row.of(bucket, columns)));
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
        emitAll();
    }

    @Override
    public void processWatermark(Watermark mark) throws Exception {
        emitAll();
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
