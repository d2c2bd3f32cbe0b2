package featurestore.job;

import java.util.ArrayList;
import java.util.List;

import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.runtime.state.StateInitializationContext;
import org.apache.flink.runtime.state.StateSnapshotContext;
import org.apache.flink.streaming.api.operators.ProcessOperator;
import org.apache.flink.streaming.api.watermark.Watermark;
import org.apache.flink.types.Row;

/**
 * The operator that runs {@link DecodeEvents}, keeping its source subtask's event-time progress across a restore.
 *
 * <p>Flink checkpoints no watermark: after a restore, the source's watermark restarts from the first record
 * replayed. This operator stores the highest watermark it has forwarded in each checkpoint (operator union state:
 * one entry {@code [subtask index, parallelism, watermark]} per subtask; the end-of-input watermark is never
 * stored) and, restored, takes it back as a floor:
 * <ul>
 *   <li>{@link DecodeEvents} dead-letters as too late every record at or below {@code floor - allowed lateness}
 *       and counts as late every record at or below the floor, on top of what the source's SQL decided from the
 *       replayed records alone. With one partition per source subtask, restored at the same parallelism, that is
 *       exactly the decision of a run that never stopped; with several partitions per subtask the floor is
 *       their combined watermark, which can be lower than the one such a run reaches;</li>
 *   <li>the floor is sent downstream in {@link #open()} and no lower watermark passes after it, so the window
 *       operators see the event time they had reached, not the replay's.</li>
 * </ul>
 * Restored at the same parallelism, a subtask takes its own entry (it reads the same Kafka partitions again);
 * at another parallelism, the lowest entry of all (never more too late than the run that wrote them; none at all
 * when a subtask had no watermark, e.g. one that read no partition).
 */
public class DecodeOperator extends ProcessOperator<Row, Row> {
    private static final long serialVersionUID = 1L;
    private static final ListStateDescriptor<long[]> PROGRESS =
            new ListStateDescriptor<>("event-time-progress", PrimitiveArrayTypeInfo.LONG_PRIMITIVE_ARRAY_TYPE_INFO);

    private transient ListState<long[]> progress;
    private transient long floor;
    private transient long highest;
    private transient long stored;

    public DecodeOperator(DecodeEvents decode) {
        super(decode);
    }

    @Override
    public void initializeState(StateInitializationContext context) throws Exception {
        super.initializeState(context);
        floor = Long.MIN_VALUE;
        progress = context.getOperatorStateStore().getUnionListState(PROGRESS);
        if (context.isRestored()) {
            int index = getRuntimeContext().getTaskInfo().getIndexOfThisSubtask();
            int parallelism = getRuntimeContext().getTaskInfo().getNumberOfParallelSubtasks();
            List<long[]> entries = new ArrayList<>();
            progress.get().forEach(entries::add);
            floor = restoredFloor(entries, index, parallelism);
        }
        highest = floor;
        stored = floor;
        ((DecodeEvents) getUserFunction()).restoredWatermark(floor);
    }

    /** The watermark a subtask resumes from: its own entry at the same parallelism, else the lowest of all. */
    public static long restoredFloor(List<long[]> entries, int index, int parallelism) {
        long lowest = Long.MAX_VALUE;
        for (long[] entry : entries) {
            if (entry[1] == parallelism && entry[0] == index) {
                return entry[2];
            }
            lowest = Math.min(lowest, entry[2]);
        }
        return entries.isEmpty() ? Long.MIN_VALUE : lowest;
    }

    @Override
    public void open() throws Exception {
        super.open();
        if (floor != Long.MIN_VALUE) {
            processWatermark(new Watermark(floor));
        }
    }

    @Override
    public void processWatermark(Watermark mark) throws Exception {
        if (mark.getTimestamp() < highest) {
            return; // behind what this subtask had reached before the restore (or already forwarded)
        }
        highest = mark.getTimestamp();
        if (highest != Long.MAX_VALUE) {
            stored = highest; // not the end of input (a bounded run's end, a drain): a restore would find all too late
        }
        super.processWatermark(mark);
    }

    @Override
    public void snapshotState(StateSnapshotContext context) throws Exception {
        super.snapshotState(context);
        int index = getRuntimeContext().getTaskInfo().getIndexOfThisSubtask();
        int parallelism = getRuntimeContext().getTaskInfo().getNumberOfParallelSubtasks();
        progress.update(List.of(new long[] {index, parallelism, stored}));
    }
}
