"""TensorFlow SavedModel: read ``saved_model.pb`` with the bounded wire reader, no TensorFlow.

A SavedModel is a graph of ops. TensorFlow runs them as given, so a graph can read or write any
file (``ReadFile``, ``WriteFile``, ``MatchingFiles``, checkpoint ``Save``/``Restore`` ops aimed
somewhere else, ``PrintV2`` to a ``file://`` stream) or call back into Python (``PyFunc``,
``EagerPyFunc``), and ops outside TensorFlow's own set need a native library loaded with
``tf.load_op_library``. Keras models saved this way also embed each layer's config as JSON in the
object graph, where Lambda layers carry bytecode: that JSON is reviewed with the Keras rules.

Every op of the top-level graph and of every library function is listed (in the evidence of the
``tf.ops`` finding); checkpoint ops count as standard only inside TensorFlow's own save and restore
functions (``__inference__traced_save_*``/``_restore_*``) or a TF1 ``save/`` name scope, and
vocabulary tables read from text files only inside TF's resource initializers
(``__inference__initializer_*``), which TF points at the model's own ``assets/``. These patterns
were checked against SavedModels written by TensorFlow 2.21 (see docs/scan-formats.md).

    >>> SavedModelScanner().formats == frozenset({Format.SAVEDMODEL})
    True
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO, Final

from bastion.findings import Finding, Severity
from bastion.scan.formats._finding import CODE_EXECUTION, SUPPLY_CHAIN, finding
from bastion.scan.formats._protobuf import (
    LENGTH,
    WireError,
    WireField,
    fields,
    is_keras_metadata,
    read_text,
)
from bastion.scan.formats.keras_metadata import MAX_METADATA, config_findings, scan_keras_metadata
from bastion.scan.interface import Format, Member, ScanLimits, Source
from bastion.scan.pickle.policy import Policy
from bastion.scan.sniff import HEAD

__all__ = ["SavedModelScanner"]

PYTHON_OPS: Final = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})
"""Ops that call a Python function registered in the loading process."""
FILE_OPS: Final = frozenset({
    "ReadFile", "WriteFile", "MatchingFiles", "ImmutableConst",
    "InitializeTableFromTextFile", "InitializeTableFromTextFileV2", "LoadAndRemapMatrix",
    "TextLineDataset", "TFRecordDataset", "TFRecordDatasetV2", "FixedLengthRecordDataset",
    "FixedLengthRecordDatasetV2", "TextLineReader", "TextLineReaderV2", "WholeFileReader",
    "WholeFileReaderV2", "TFRecordReader", "TFRecordReaderV2", "FixedLengthRecordReader",
    "FixedLengthRecordReaderV2", "SaveDataset", "SaveDatasetV2", "LoadDataset",
    "CacheDataset", "CacheDatasetV2",  # a filename attribute: the cache is written there
    "DatasetToTFRecord", "SnapshotDataset", "SnapshotDatasetV2", "CreateSummaryFileWriter",
    "CreateSummaryDbWriter", "DebugIdentity", "DebugIdentityV2", "DebugIdentityV3",
    "ExperimentalDatasetToTFRecord",
})
"""Ops that read or write files named by their inputs or attributes."""
CHECKPOINT_OPS: Final = frozenset({
    "Save", "SaveV2", "SaveSlices", "Restore", "RestoreV2", "RestoreSlice",
    "MergeV2Checkpoints",
})
"""File ops that are standard inside TensorFlow's own save and restore functions."""
_CHECKPOINT_FUNCTION: Final = re.compile(r"^__inference__traced_(save|restore)_\d+$")
ASSET_TABLE_OPS: Final = frozenset({"InitializeTableFromTextFile", "InitializeTableFromTextFileV2"})
"""Vocabulary tables read from the SavedModel's own assets/ by TF's resource initializers."""
_INITIALIZER_FUNCTION: Final = re.compile(r"^__inference__initializer_\d+$")
_CHECKPOINT_SCOPE: Final = re.compile(r"^save(_\d+)?/")

# Ops common in SavedModels written by TensorFlow 2 and Keras: anything else is listed as
# unrecognised (low) so a reviewer can look. Not TensorFlow's whole registry (1,500+ ops).
_KNOWN_OPS_WORDS: Final = """
Abs Acos Acosh Add AddN AddV2 All Any ApproximateEqual ArgMax ArgMin Asin Asinh Assert Assign
AssignAdd AssignAddVariableOp AssignSub AssignSubVariableOp AssignVariableOp Atan Atan2 Atanh
AvgPool AvgPool3D BatchMatMul BatchMatMulV2 BatchMatMulV3 BatchToSpaceND BiasAdd BiasAddV1
Bitcast BroadcastArgs BroadcastGradientArgs BroadcastTo Bucketize Cast Ceil CheckNumerics
CheckNumericsV2 Cholesky ClipByValue Complex ComplexAbs Concat ConcatOffset ConcatV2 Const
ControlTrigger Conv2D Conv2DBackpropFilter Conv2DBackpropInput Conv3D Conv3DBackpropInputV2
Cos Cosh CropAndResize Cumprod Cumsum DecodeBase64 DecodeJpeg DecodePng DecodeImage
DepthToSpace DepthwiseConv2dNative DepthwiseConv2dNativeBackpropInput Dequantize DestroyResourceOp
Diag DiagPart Digamma DisableCopyOnRead Div DivNoNan DynamicPartition DynamicStitch Einsum Elu
EmptyTensorList EnsureShape Enter Equal Erf Erfc Exit Exp ExpandDims Expm1 ExtractImagePatches
FFT Fill FloorDiv FloorMod Floor FusedBatchNorm FusedBatchNormV2 FusedBatchNormV3 Gather
GatherNd GatherV2 Greater GreaterEqual HashTable HashTableV2 HistogramSummary IFFT Identity
IdentityN If Imag InTopKV2 InvertPermutation IsFinite IsInf IsNan IsVariableInitialized
L2Loss LeakyRelu Less LessEqual Lgamma LinSpace ListDiff Log Log1p LogSoftmax LogicalAnd
LogicalNot LogicalOr LookupTableExportV2 LookupTableFindV2 LookupTableImportV2
LookupTableInsertV2 LookupTableSizeV2 LoopCond LRN MatMul MatrixBandPart MatrixDiag
MatrixDiagPartV3 MatrixDiagV3 MatrixInverse MatrixSetDiagV3 MatrixSolve MatrixTriangularSolve
Max MaxPool MaxPool3D MaxPoolV2 MaxPoolWithArgmax Maximum Mean Merge MergeSummary Min Minimum
MirrorPad Mod Mul MulNoNan MutableHashTable MutableHashTableV2 MutableDenseHashTableV2
MutableHashTableOfTensorsV2 Neg NextIteration NoOp NonMaxSuppressionV3 NonMaxSuppressionV4
NonMaxSuppressionV5 NotEqual OneHot OnesLike OptionalFromValue OptionalGetValue
OptionalHasValue OptionalNone Pack Pad PadV2 PartitionedCall Placeholder PlaceholderWithDefault
Pow PreventGradient Print PrintV2 Prod QueueDequeueV2 RaggedGather RaggedRange
RaggedTensorFromVariant RaggedTensorToSparse RaggedTensorToTensor RaggedTensorToVariant
RandomShuffle RandomStandardNormal RandomUniform RandomUniformInt Range Rank ReadVariableOp
Real RealDiv Reciprocal ReduceJoin RefSwitch RegexFullMatch RegexReplace Relu Relu6 Reshape
ResizeArea ResizeBicubic ResizeBilinear ResizeNearestNeighbor ResourceGather
ResourceScatterAdd ResourceScatterUpdate ResourceStridedSliceAssign Reverse ReverseSequence
ReverseV2 RightShift Rint Round Rsqrt SampleDistortedBoundingBoxV2 ScalarSummary
ScatterNd ScatterNdUpdate SegmentSum Select SelectV2 Selu Shape ShapeN ShardedFilename
Sigmoid Sign Sin Sinh Size Slice Snapshot Softmax Softplus Softsign SpaceToBatchND
SpaceToDepth SparseFillEmptyRows SparseReshape SparseSegmentMean SparseSegmentSqrtN
SparseSegmentSum SparseSoftmaxCrossEntropyWithLogits SparseTensorDenseMatMul SparseToDense
Split SplitV Sqrt Square SquaredDifference Squeeze Stack StackPopV2 StackPushV2 StackV2
StatefulPartitionedCall StatelessIf StatelessRandomNormal StatelessRandomNormalV2
StatelessRandomUniform StatelessRandomUniformV2 StatelessRandomGetKeyCounter
StatelessRandomGetKeyCounterAlg StatelessWhile StaticRegexFullMatch StaticRegexReplace
StopGradient StridedSlice StridedSliceGrad StringFormat StringJoin StringLength StringLower
StringSplit StringSplitV2 StringStrip StringToHashBucketFast StringToNumber StringUpper Sub
Substr Sum Switch SymbolicGradient Tan Tanh TensorArrayGatherV3 TensorArrayReadV3
TensorArrayScatterV3 TensorArraySizeV3 TensorArrayV3 TensorArrayWriteV3 TensorListFromTensor
TensorListGetItem TensorListLength TensorListPushBack TensorListReserve TensorListSetItem
TensorListStack TensorScatterAdd TensorScatterUpdate TensorSummaryV2 Tile TopKV2 Transpose
TruncateDiv TruncateMod TruncatedNormal Unique UniqueV2 Unpack UnsortedSegmentMax
UnsortedSegmentMin UnsortedSegmentSum VarHandleOp VarIsInitializedOp Variable VariableV2
Where While Xdivy Xlog1py ZerosLike _Arg _Retval _DeviceArg _DeviceRetval
"""
KNOWN_OPS: Final = frozenset(_KNOWN_OPS_WORDS.split())

_MAX_FIELDS: Final = 20_000_000
_MAX_TEXT: Final = 1 << 16


@dataclass(slots=True)
class _Op:
    """One op use: which op, the node's name, the function it is in (``""`` at top level)."""

    op: str
    node: str
    function: str
    offset: int
    output_stream: str = ""


@dataclass(slots=True)
class _Walk:
    ops: list[_Op] = field(default_factory=list)
    functions: set[str] = field(default_factory=set)
    metadata: list[tuple[int, int]] = field(default_factory=list)
    """SavedUserObject metadata strings: (length, offset)."""
    fields_seen: int = 0


# Sub-messages to descend into, by message kind (field numbers from TensorFlow's protos).
_CHILDREN: Final[dict[str, dict[int, str]]] = {
    "saved_model": {2: "meta_graph"},
    "meta_graph": {2: "graph", 7: "object_graph"},
    "graph": {1: "node", 2: "library"},
    "library": {1: "function"},
    "object_graph": {1: "object"},
    "object": {4: "user_object"},
}


@dataclass(frozen=True, slots=True)
class SavedModelScanner:
    """Lists the ops of a SavedModel and flags those that touch files, run Python or are custom;
    reviews the Keras configs in the object graph and in tf.keras' ``keras_metadata.pb``."""

    policy: Policy = field(default_factory=Policy.default)
    """Judges classes and functions from outside Keras in Keras metadata (``--allow``)."""
    formats: frozenset[Format] = frozenset({Format.SAVEDMODEL})

    def with_policy(self, policy: Policy) -> SavedModelScanner:
        """The same scanner judging outside code by ``policy``."""
        return SavedModelScanner(policy)

    def scan(self, source: Source, limits: ScanLimits) -> Iterator[Finding | Member]:
        """Steps: 0. tf.keras' ``keras_metadata.pb`` goes to its own reader; 1. walk the meta
        graphs, graphs, library functions and object graph; 2. judge every op; 3. review
        embedded Keras metadata."""
        with source.open() as stream:
            head = stream.read(HEAD)
        # 0.
        if is_keras_metadata(head):
            yield from scan_keras_metadata(source, self.policy)
            return
        walk = _Walk()
        with source.open() as stream:
            try:
                # 1.
                stopped = _walk(stream, source.size, walk)
                # 3.
                metadata = [(read_text(stream, WireField(3, LENGTH, n, at), MAX_METADATA), at)
                            for n, at in walk.metadata]
            except WireError as exc:
                yield finding(
                    source, "tf.malformed", Severity.HIGH, "SavedModel is malformed",
                    detail=f"The protobuf structure is broken ({exc}); what follows was not "
                    "checked, and TensorFlow may read it differently.",
                    remediation="Obtain the model again from its publisher.", offset=exc.offset,
                )
                return
        if stopped:
            yield finding(
                source, "tf.limit", Severity.HIGH, "SavedModel exceeds the scanner's limits",
                detail=f"{stopped}; the rest was not checked.",
                remediation="Review the model by hand.",
            )
        # 2.
        yield from _op_findings(source, walk)
        yield from _metadata_findings(source, metadata, self.policy)


def _walk(stream: BinaryIO, size: int, walk: _Walk) -> str | None:
    queue: deque[tuple[str, int, int, str]] = deque([("saved_model", 0, size, "")])
    while queue:
        kind, start, end, function = queue.popleft()
        node = _Op("", "", function, start)
        stream_attr: list[WireField] = []
        for f in fields(stream, start, end):
            walk.fields_seen += 1
            if walk.fields_seen > _MAX_FIELDS:
                return f"more than {_MAX_FIELDS} protobuf fields"
            if f.wire_type != LENGTH:
                continue
            child = _CHILDREN.get(kind, {}).get(f.number)
            if child is not None:
                queue.append((child, f.offset, f.offset + f.value, function))
            elif kind == "function" and f.number == 1:  # signature: OpDef, field 1 its name
                name = _first_text(stream, f, 1)
                walk.functions.add(name)
                function = name
            elif kind == "function" and f.number == 3:  # node_def
                queue.append(("node", f.offset, f.offset + f.value, function))
            elif kind == "node" and f.number in (1, 2):
                text = read_text(stream, f, _MAX_TEXT)
                node.op, node.node = (text, node.node) if f.number == 2 else (node.op, text)
            elif kind == "node" and f.number == 5:
                stream_attr.append(f)
            elif kind == "user_object" and f.number == 3:
                walk.metadata.append((f.value, f.offset))
        if kind == "node":
            if node.op == "PrintV2":
                node.output_stream = _output_stream(stream, stream_attr)
            walk.ops.append(node)
    return None


def _first_text(stream: BinaryIO, message: WireField, number: int) -> str:
    for f in fields(stream, message.offset, message.offset + message.value):
        if f.number == number and f.wire_type == LENGTH:
            return read_text(stream, f, _MAX_TEXT)
    return ""


def _output_stream(stream: BinaryIO, attrs: list[WireField]) -> str:
    """PrintV2's ``output_stream`` attribute (map entry: 1 key, 2 AttrValue whose 2 is ``s``)."""
    for entry in attrs:
        if _first_text(stream, entry, 1) != "output_stream":
            continue
        for f in fields(stream, entry.offset, entry.offset + entry.value):
            if f.number == 2 and f.wire_type == LENGTH:
                return _first_text(stream, f, 2)
    return ""


def _standard_file_use(op: _Op) -> bool:
    """Checkpoint ops in TF's save/restore functions or a TF1 ``save/`` scope, and vocabulary
    tables in TF's resource initializers (TF points them at the model's own assets/ on load)."""
    if op.op in ASSET_TABLE_OPS:
        return bool(_INITIALIZER_FUNCTION.match(op.function))
    return op.op in CHECKPOINT_OPS and bool(
        _CHECKPOINT_FUNCTION.match(op.function) or _CHECKPOINT_SCOPE.match(op.node))


def _op_findings(source: Source, walk: _Walk) -> Iterator[Finding]:
    names = sorted({op.op for op in walk.ops})
    evidence = {"ops": names[:500]}
    for op in walk.ops:
        where = f"{op.function or 'graph'}/{op.node}"
        if op.op in PYTHON_OPS:
            yield finding(
                source, "tf.op.python", Severity.CRITICAL, f"SavedModel calls Python ({op.op})",
                detail=f"Node {where} runs a Python function through {op.op}: whatever the "
                "loading process has registered under that token runs with its privileges.",
                remediation="Do not load this model; rebuild it without tf.py_function.",
                offset=op.offset, evidence={"op": op.op, "node": where, **evidence},
                techniques=CODE_EXECUTION,
            )
        elif ((op.op in FILE_OPS or op.op in CHECKPOINT_OPS) and not _standard_file_use(op)) or (
            op.op == "PrintV2" and op.output_stream.startswith("file://")
        ):
            yield finding(
                source, "tf.op.file", Severity.HIGH, f"SavedModel op touches files ({op.op})",
                detail=f"Node {where} reads or writes files when the graph runs"
                + (f" ({op.output_stream})" if op.output_stream else "")
                + "; outside TensorFlow's own checkpoint and asset functions that is not how "
                "models load their weights or vocabularies.",
                remediation="Review what file the op's inputs name before serving this model.",
                offset=op.offset, evidence={"op": op.op, "node": where, **evidence},
                techniques=CODE_EXECUTION,
            )
    known = KNOWN_OPS | PYTHON_OPS | FILE_OPS | CHECKPOINT_OPS | walk.functions
    custom = sorted(n for n in names if n and ">" in n)
    if custom:
        yield finding(
            source, "tf.op.custom", Severity.MEDIUM, "SavedModel uses custom ops",
            detail=f"Ops {', '.join(custom[:20])} come from a library outside TensorFlow, loaded "
            "as native code with tf.load_op_library.",
            remediation="Find and review the library that implements these ops.",
            evidence={"custom": custom, **evidence}, techniques=SUPPLY_CHAIN,
        )
    unlisted = [n for n in names if n and n not in known and n not in custom]
    if unlisted:
        yield finding(
            source, "tf.op.unlisted", Severity.LOW, "SavedModel uses ops outside the common set",
            detail=f"Ops {', '.join(unlisted[:20])} are not among the ops Bastion knows to be "
            "common; most are ordinary TensorFlow ops, a few may be custom.",
            remediation="Check that each op belongs to TensorFlow.",
            evidence={"unlisted": unlisted, **evidence},
        )
    yield finding(
        source, "tf.ops", Severity.INFO, f"SavedModel uses {len(names)} distinct ops",
        detail="Every op of the graph and of its library functions.",
        remediation="None needed.", evidence=evidence,
    )


def _metadata_findings(source: Source, metadata: list[tuple[str, int]],
                       policy: Policy) -> Iterator[Finding]:
    """Keras layer configs stored in the object graph's SavedUserObject metadata."""
    for text, at in metadata:
        if not text.strip():
            continue
        try:
            config = json.loads(text)
        except (ValueError, RecursionError):
            continue  # not Keras metadata; other libraries store their own strings here
        yield from config_findings(source, config, what="Keras metadata in the object graph",
                                   offset=at, policy=policy)
