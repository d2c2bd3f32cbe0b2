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
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.types.Row;

/**
 * The operator that runs {@link DecodeEvents}, keeping its source subtask's event-time progress across a restore.
 *
 * <p>Flink checkpoints no watermark: after a restore, the source's watermark restarts from the first record
 * replayed. This operator stores in each checkpoint the progress of each Kafka partition its subtask read and
 * the highest watermark it has forwarded (never the end-of-input one) ({@link PartitionProgress}; operator union
 * state) and, restored, follows what a run that never stopped has: the larger of that watermark and the lowest
 * over the subtask's partitions of the larger of each one's stored and replayed progress
 * ({@link PartitionProgress#combined}):
 * <ul>
 *   <li>{@link DecodeEvents} dead-letters as too late every record at or below {@code combined - allowed
 *       lateness} and counts as late every record at or below {@code combined}, on top of what the source's SQL
 *       decided from the replayed records alone. Restored at the same parallelism, that is exactly the decision of
 *       a run that never stopped, with one partition per subtask or several;</li>
 *   <li>the restored progress is sent downstream in {@link #open()}, and again whenever a record raises it
 *       (after the record), and no lower watermark passes after it, so the window operators see the event time
 *       they had reached, not the replay's.</li>
 * </ul>
 * Restored at the same parallelism, a subtask takes its own entries (it reads the same Kafka partitions again);
 * at another parallelism, the lowest subtask watermark as a fixed floor (never more too late than the run that
 * wrote them; none at all when a subtask had no watermark, e.g. one that read no partition).
 */
public class DecodeOperator extends ProcessOperator<Row, Row> {
    private static final long serialVersionUID = 1L;
    private static final ListStateDescriptor<long[]> PROGRESS =
            new ListStateDescriptor<>("event-time-progress", PrimitiveArrayTypeInfo.LONG_PRIMITIVE_ARRAY_TYPE_INFO);

    private transient ListState<long[]> state;
    private transient PartitionProgress progress;
    private transient long highest;
    private transient long stored; // the highest watermark forwarded, but never the end of input

    public DecodeOperator(DecodeEvents decode) {
        super(decode);
    }

    @Override
    public void initializeState(StateInitializationContext context) throws Exception {
        super.initializeState(context);
        DecodeEvents decode = (DecodeEvents) getUserFunction();
        progress = decode.newProgress();
        state = context.getOperatorStateStore().getUnionListState(PROGRESS);
        if (context.isRestored()) {
            int index = getRuntimeContext().getTaskInfo().getIndexOfThisSubtask();
            int parallelism = getRuntimeContext().getTaskInfo().getNumberOfParallelSubtasks();
            List<long[]> entries = new ArrayList<>();
            state.get().forEach(entries::add);
            progress.restore(entries, index, parallelism);
        }
        highest = progress.combined();
        stored = highest;
        decode.progress(progress);
    }

    @Override
    public void open() throws Exception {
        super.open();
        if (highest != PartitionProgress.NONE) {
            super.processWatermark(new Watermark(highest));
        }
    }

    @Override
    public void processElement(StreamRecord<Row> element) throws Exception {
        super.processElement(element);
        if (progress.restoredAny()) {
            long combined = progress.combined();
            if (combined > highest) { // the record moved the restored progress on: as the source would have
                highest = combined;
                stored = combined;
                super.processWatermark(new Watermark(combined));
            }
        }
    }

    @Override
    public void processWatermark(Watermark mark) throws Exception {
        if (mark.getTimestamp() <= highest) {
            return; // at or behind what this subtask had reached before the restore (or already forwarded)
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
        state.update(progress.entries(index, parallelism, stored, PartitionProgress.monotonicMs()));
    }
}
