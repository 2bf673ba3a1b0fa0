"""TensorFlow SavedModel: read ``saved_model.pb`` with the bounded wire reader, no TensorFlow.

A SavedModel is a graph of ops. TensorFlow runs them as given, so a graph can read or write any
file (``ReadFile``, ``WriteFile``, ``MatchingFiles``, checkpoint ``Save``/``Restore`` ops aimed
somewhere else, ``PrintV2`` to a ``file://`` stream) or call back into Python (``PyFunc``,
``EagerPyFunc``), and ops outside TensorFlow's own set need a native library loaded with
``tf.load_op_library``. Keras models saved this way also embed each layer's config as JSON in the
object graph, where Lambda layers carry bytecode: that JSON is reviewed with the Keras rules.

Every op of the top-level graph and of every library function is listed (in the evidence of the
``tf.ops`` finding). File ops are judged by where their paths come from, never by the name of
the function or scope they sit in (a function can be called anything, ``__inference__traced_save_1``
included): checkpoint ops count as standard only when every file they name is built, with the
string ops TensorFlow's saver uses, from the prefix the loader feeds (the ``saver_filename``
placeholder of ``saver_def``, passed as the first argument of TF2's traced save and restore
functions), and vocabulary tables read from text files only when the file is an argument the
object graph binds to a ``SavedAsset`` (TF's resource initializers, pointed at the model's own
``assets/``). Where these patterns come from (a TF 2.9 ``saved_model.pb``, TF's save code) is
in docs/scan-formats.md.

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
    read_payload,
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
"""File ops that are standard when their paths come from the loader's checkpoint prefix."""
ASSET_TABLE_OPS: Final = frozenset({"InitializeTableFromTextFile", "InitializeTableFromTextFileV2"})
"""Vocabulary tables read from the SavedModel's own assets/ by TF's resource initializers."""

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
_MAX_CONST: Final = 4096
"""Longest string constant read as part of a checkpoint path (TF's are a few bytes)."""
_MAX_FLOW: Final = 64
"""Deepest chain of ops followed back from a checkpoint op to where its path comes from."""
_MAX_ATTR_DEPTH: Final = 8
"""Deepest nesting of function-valued attributes searched for references to a function."""
_CALL_OPS: Final = frozenset({"PartitionedCall", "StatefulPartitionedCall"})
"""Ops whose ``f`` attribute names the function they call with their inputs as its arguments."""
_PATH_PART: Final = re.compile(r"[\w.\-]+(/[\w.\-]+)*")
"""A relative name TF's saver appends to the prefix (``.part``, ``_temp/part``,
``_temp_<uuid>/part``) or TF1's default prefix ``model``; checked for ``..`` separately."""
# Which data inputs of each checkpoint op name files (TensorFlow's io_ops.cc op definitions).
_PATH_INPUTS: Final[dict[str, tuple[int, ...]]] = {
    "MergeV2Checkpoints": (0, 1),  # checkpoint_prefixes (read, then deleted), destination_prefix
}
"""``Save*``/``Restore*`` name their file in input 0 (``prefix``/``filename``/``file_pattern``)."""

Scope = tuple[int, str]
"""Where a node lives: (offset of its meta graph, function name; ``""`` for the graph)."""


@dataclass(slots=True)
class _Op:
    """One op use: which op, the node's name, the function it is in (``""`` at top level)."""

    op: str
    node: str
    function: str
    offset: int
    meta: int = 0
    """Offset of the meta graph holding it (function names are per meta graph)."""
    inputs: list[str] = field(default_factory=list)
    """NodeDef ``input``: ``node``/``node:1`` in a graph, ``arg`` or ``node:out:0`` in a
    function, ``^node`` for control edges."""
    attrs: list[WireField] = field(default_factory=list)
    """Its ``attr`` map entries, read when needed."""
    output_stream: str = ""

    @property
    def scope(self) -> Scope:
        """The graph or function its inputs are names in."""
        return self.meta, self.function

    @property
    def data(self) -> list[str]:
        """Data inputs in order (control inputs, ``^node``, carry no value)."""
        return [i for i in self.inputs if not i.startswith("^")]


@dataclass(slots=True)
class _Walk:
    ops: list[_Op] = field(default_factory=list)
    functions: set[str] = field(default_factory=set)
    metadata: list[tuple[int, int]] = field(default_factory=list)
    """SavedUserObject metadata strings: (length, offset)."""
    signatures: dict[Scope, list[list[str]]] = field(default_factory=dict)
    """Each function's input argument names, one list per FunctionDef of that name."""
    exposed: set[Scope] = field(default_factory=set)
    """Functions the object graph lists: the loader hands them to Python as callables."""
    bound: dict[Scope, list[list[int]]] = field(default_factory=dict)
    """``SavedConcreteFunction.bound_inputs``: object-graph nodes fed to a function's last
    arguments (its captures) when the loader calls it."""
    assets: set[tuple[int, int]] = field(default_factory=set)
    """(meta graph, object-graph node) of each ``SavedAsset``: a file in the model's assets/."""
    fields_seen: int = 0


# Sub-messages to descend into, by message kind (field numbers from TensorFlow's protos).
_CHILDREN: Final[dict[str, dict[int, str]]] = {
    "saved_model": {2: "meta_graph"},
    "meta_graph": {2: "graph", 7: "object_graph"},
    "graph": {1: "node", 2: "library"},
    "library": {1: "function"},
    "object_graph": {2: "concrete"},
    "object": {4: "user_object", 6: "saved_function", 8: "bare_function"},
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
        graphs, graphs, library functions and object graph; 2. judge every op, file ops by
        where their paths come from; 3. review embedded Keras metadata."""
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
                # 2.
                flow = _Flow(stream, walk)
                standard = {id(op) for op in walk.ops if _standard_file_use(op, flow)}
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
        yield from _op_findings(source, walk, standard)
        yield from _metadata_findings(source, metadata, self.policy)


def _walk(stream: BinaryIO, size: int, walk: _Walk) -> str | None:
    """Breadth first over the messages that matter; a function's nodes are queued only once
    its whole FunctionDef is read, so they carry its name wherever its signature sits."""
    queue: deque[tuple[str, int, int, int, str, int]] = deque(
        [("saved_model", 0, size, 0, "", 0)])
    while queue:
        kind, start, end, meta, function, index = queue.popleft()
        if kind == "meta_graph":
            meta = start
        node = _Op("", "", function, start, meta)
        parts: list[WireField] = []  # function: signatures; concrete: its key and value
        node_defs: list[WireField] = []
        objects = 0
        for f in fields(stream, start, end):
            walk.fields_seen += 1
            if walk.fields_seen > _MAX_FIELDS:
                return f"more than {_MAX_FIELDS} protobuf fields"
            if f.wire_type != LENGTH:
                continue
            child = _CHILDREN.get(kind, {}).get(f.number)
            if child is not None:
                queue.append((child, f.offset, f.offset + f.value, meta, function, 0))
            elif kind == "object_graph" and f.number == 1:  # nodes, numbered in order
                queue.append(("object", f.offset, f.offset + f.value, meta, "", objects))
                objects += 1
            elif kind == "object" and f.number == 5:
                walk.assets.add((meta, index))
            elif kind in ("saved_function", "bare_function") and f.number == 1:
                walk.exposed.add((meta, read_text(stream, f, _MAX_TEXT)))
            elif (kind == "function" and f.number == 1) or kind == "concrete":
                parts.append(f)
            elif kind == "function" and f.number == 3:
                node_defs.append(f)
            elif kind == "node" and f.number in (1, 2):
                text = read_text(stream, f, _MAX_TEXT)
                node.op, node.node = (text, node.node) if f.number == 2 else (node.op, text)
            elif kind == "node" and f.number == 3:
                node.inputs.append(read_text(stream, f, _MAX_TEXT))
            elif kind == "node" and f.number == 5:
                node.attrs.append(f)
            elif kind == "user_object" and f.number == 3:
                walk.metadata.append((f.value, f.offset))
        if kind == "node":
            if node.op == "PrintV2":
                out = _attr_text(stream, _attr(stream, node, "output_stream"), 2)
                node.output_stream = out or ""
            walk.ops.append(node)
        elif kind == "function":
            name, args = _signature(stream, parts)
            walk.functions.add(name)
            walk.signatures.setdefault((meta, name), []).append(args)
            queue.extend(("node", f.offset, f.offset + f.value, meta, name, 0)
                         for f in node_defs)
        elif kind == "concrete":
            name, bound = _concrete(stream, parts)
            walk.exposed.add((meta, name))
            walk.bound.setdefault((meta, name), []).append(bound)
    return None


def _texts(stream: BinaryIO, message: WireField, number: int) -> Iterator[str]:
    for f in fields(stream, message.offset, message.offset + message.value):
        if f.number == number and f.wire_type == LENGTH:
            yield read_text(stream, f, _MAX_TEXT)


def _last_text(stream: BinaryIO, message: WireField, number: int) -> str | None:
    """A singular string field as protobuf reads it (the last occurrence wins)."""
    value = None
    for value in _texts(stream, message, number):  # noqa: B007
        pass
    return value


def _signature(stream: BinaryIO, signatures: list[WireField]) -> tuple[str, list[str]]:
    """A FunctionDef's name and input argument names. A repeated singular message is merged,
    as protobuf does: the last name wins, the argument lists concatenate."""
    name, args = "", []
    for signature in signatures:
        for f in fields(stream, signature.offset, signature.offset + signature.value):
            if f.wire_type != LENGTH:
                continue
            if f.number == 1:
                name = read_text(stream, f, _MAX_TEXT)
            elif f.number == 2:  # input_arg: ArgDef, 1 its name
                args.append(_last_text(stream, f, 1) or "")
    return name, args


def _concrete(stream: BinaryIO, entry: list[WireField]) -> tuple[str, list[int]]:
    """A ``concrete_functions`` map entry: the function's name and its ``bound_inputs``."""
    name, bound = "", list[int]()
    for f in entry:
        if f.number == 1:
            name = read_text(stream, f, _MAX_TEXT)
        elif f.number == 2:  # SavedConcreteFunction; given twice, protobuf merges the two
            for g in fields(stream, f.offset, f.offset + f.value):
                if g.number != 2:
                    continue
                if g.wire_type == LENGTH:  # packed, as proto3 writes repeated int32
                    bound.extend(_packed(read_payload(stream, g, _MAX_TEXT), g.offset))
                else:
                    bound.append(g.value)
    return name, bound


def _packed(data: bytes, offset: int) -> Iterator[int]:
    value = shift = 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            yield value
            value = shift = 0
        elif shift >= 70:
            raise WireError("varint longer than 10 bytes", offset)
    if shift:
        raise WireError("packed field ends inside a varint", offset)


def _attr(stream: BinaryIO, node: _Op, key: str) -> WireField | None:
    """The AttrValue a node holds under ``key`` (map semantics: the last entry wins)."""
    value = None
    for entry in node.attrs:
        if _last_text(stream, entry, 1) == key:
            value = next((f for f in fields(stream, entry.offset, entry.offset + entry.value)
                          if f.number == 2 and f.wire_type == LENGTH), None)
    return value


def _attr_text(stream: BinaryIO, value: WireField | None, number: int) -> str | None:
    """A string held in field ``number`` of an AttrValue (2: ``s``)."""
    return None if value is None else _last_text(stream, value, number)


@dataclass
class _Flow:
    """Where the paths of file ops come from, followed through the graph's edges.

    Trust comes from what the ops do with their inputs, never from a function's or a node's
    name: TensorFlow's own saver builds every checkpoint path from the one prefix its loader
    feeds (``saver_def.filename_tensor_name``, the ``saver_filename`` placeholder) with a
    fixed set of string ops, and its table initializers read only files the object graph
    binds to the model's assets. Anything else that names a file is the graph's choice.
    """

    stream: BinaryIO
    walk: _Walk
    nodes: dict[Scope, dict[str, _Op | None]] = field(init=False)
    """Each scope's nodes by name; ``None`` where a name is used twice (trusted by neither)."""
    unsure: bool = False
    """Some function-valued attribute nests past :data:`_MAX_ATTR_DEPTH`: its uses are not
    all known, so no function's arguments are trusted."""
    _refs: dict[Scope, list[tuple[_Op, bool]]] = field(default_factory=dict)
    _candidates: set[Scope] = field(default_factory=set)
    _memo: dict[tuple[Scope, str], bool] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.nodes = {}
        for op in self.walk.ops:
            scope = self.nodes.setdefault(op.scope, {})
            scope[op.node] = None if op.node in scope else op
            if op.function and (op.op in CHECKPOINT_OPS or op.op in ASSET_TABLE_OPS):
                self._candidates.add(op.scope)

    def node(self, scope: Scope, ref: str) -> _Op | None:
        """The node a data input names (``None`` for a function argument or a dangling name)."""
        if scope[1] and ":" not in ref:
            return None
        return self.nodes.get(scope, {}).get(ref.split(":", 1)[0])

    def references(self, scope: Scope) -> list[tuple[_Op, bool]]:
        """Every node that names the function: ``True`` where it calls it with its data
        inputs as the arguments (``PartitionedCall``'s ``f``, or the function used as an op),
        ``False`` for any other use (``If``/``While`` branches, dataset functions, lists).

        Found in one pass over every node for the functions that hold file ops (and, should
        a prefix come through another function, once more for that one)."""
        if scope not in self._refs:
            wanted = {scope} | {c for c in self._candidates if c not in self._refs}
            for key in wanted:
                self._refs[key] = []
            needles = {key[1].encode() for key in wanted}
            for op in self.walk.ops:
                if (op.meta, op.op) in wanted:
                    self._refs[op.meta, op.op].append((op, True))
                for name, direct in self._named_functions(op, needles):
                    if (op.meta, name) in wanted:
                        self._refs[op.meta, name].append((op, direct))
        return self._refs[scope]

    def _named_functions(self, op: _Op, needles: set[bytes]) -> Iterator[tuple[str, bool]]:
        stack: list[tuple[WireField, str, int]] = []
        for entry in op.attrs:
            if entry.value <= _MAX_TEXT:  # most attrs (a type, a shape) name no such function
                raw = read_payload(self.stream, entry, _MAX_TEXT)
                if not any(n in raw for n in needles):
                    continue
            key = _last_text(self.stream, entry, 1) or ""
            stack.extend((f, key, 0) for f in fields(self.stream, entry.offset,
                                                      entry.offset + entry.value)
                         if f.number == 2 and f.wire_type == LENGTH)
        while stack:  # AttrValue: 10 func (NameAttrList), 1 list (ListValue: 9 func)
            value, key, depth = stack.pop()
            for f in fields(self.stream, value.offset, value.offset + value.value):
                if f.wire_type != LENGTH or f.number not in (1, 10):
                    continue
                if depth > _MAX_ATTR_DEPTH:
                    self.unsure = True  # a use too deep to name: no function is vouched for
                    continue
                funcs = [f] if f.number == 10 else [
                    g for g in fields(self.stream, f.offset, f.offset + f.value)
                    if g.number == 9 and g.wire_type == LENGTH]
                for func in funcs:  # NameAttrList: 1 name, 2 attr map (entry: 2 AttrValue)
                    name = _last_text(self.stream, func, 1) or ""
                    yield name, f.number == 10 and key == "f" and depth == 0 and \
                        op.op in _CALL_OPS
                    for g in fields(self.stream, func.offset, func.offset + func.value):
                        if g.number == 2 and g.wire_type == LENGTH:
                            stack.extend((h, "", depth + 1) for h in fields(
                                self.stream, g.offset, g.offset + g.value)
                                if h.number == 2 and h.wire_type == LENGTH)

    def prefix(self, scope: Scope, ref: str, depth: int = 0) -> bool:
        """``ref`` carries the checkpoint prefix the loader passes, or a name TF's saver
        derives from it. Cycles and chains past :data:`_MAX_FLOW` are not (fail closed)."""
        key = (scope, ref)
        if key not in self._memo:
            self._memo[key] = False  # while being decided
            self._memo[key] = depth < _MAX_FLOW and self._prefix(scope, ref, depth + 1)
        return self._memo[key]

    def _prefix(self, scope: Scope, ref: str, depth: int) -> bool:
        """Steps: 1. a function's first argument, where every caller passes a prefix;
        2. the top-level graph's placeholders, which the loader feeds (TF1's
        ``PlaceholderWithDefault`` chain ends in the relative default ``model``);
        3. the saver's own string ops: ``StringJoin`` (no separator) of a prefix and fixed
        relative suffixes, ``ShardedFilename``, ``Pack`` of prefixes, ``Identity``."""
        if scope[1] and ":" not in ref:  # 1.
            return self._prefix_argument(scope, ref, depth)
        node = self.node(scope, ref)
        if node is None:
            return False
        data = node.data
        if node.op == "Placeholder":  # 2.
            return not scope[1]
        if node.op == "PlaceholderWithDefault":
            return not scope[1] and len(data) == 1 and (
                self.prefix(scope, data[0], depth) or self.suffix(scope, data[0], depth))
        if node.op in ("Identity", "ShardedFilename"):  # 3.
            return len(data) == (1 if node.op == "Identity" else 3) and \
                self.prefix(scope, data[0], depth)
        if node.op == "StringJoin":
            return bool(data) and not _attr_text(
                self.stream, _attr(self.stream, node, "separator"), 2,
            ) and self.prefix(scope, data[0], depth) and all(
                self.suffix(scope, r, depth) for r in data[1:])
        if node.op == "Pack":
            return bool(data) and all(self.prefix(scope, r, depth) for r in data)
        return False

    def _prefix_argument(self, scope: Scope, arg: str, depth: int) -> bool:
        """The function's first argument (TF's ``file_prefix``) is a prefix when the function
        has one definition, is called only directly, and every call passes a prefix; and the
        object graph does not bind that argument to something of the model's choosing."""
        args = self._args(scope)
        if args is None or not args or args[0] != arg or args.count(arg) != 1:
            return False
        if any(len(args) - len(bound) < 1 for bound in self.walk.bound.get(scope, [])):
            return False  # every argument bound: the loader calls it with the model's values
        calls = self.references(scope)
        return bool(calls) and not self.unsure and all(
            direct and caller.data and self.prefix(caller.scope, caller.data[0], depth)
            for caller, direct in calls)

    def _args(self, scope: Scope) -> list[str] | None:
        definitions = self.walk.signatures.get(scope, [])
        return definitions[0] if len(definitions) == 1 else None

    def suffix(self, scope: Scope, ref: str, depth: int = 0) -> bool:
        """A fixed relative name: a string ``Const`` matching :data:`_PATH_PART` with no
        ``..``, or a ``Select`` between two (TF2 picks ``.part`` for ``s3://`` prefixes)."""
        node = self.node(scope, ref)
        if node is None or depth > _MAX_FLOW:
            return False
        data = node.data
        if node.op == "Const":
            text = self.const_text(node)
            return text is not None and bool(_PATH_PART.fullmatch(text)) and \
                ".." not in text.split("/")
        if node.op in ("Select", "SelectV2"):
            return len(data) == 3 and all(self.suffix(scope, r, depth + 1) for r in data[1:])
        if node.op == "Identity":
            return len(data) == 1 and self.suffix(scope, data[0], depth + 1)
        return False

    def const_text(self, node: _Op) -> str | None:
        """A ``Const`` node's value when it is one short UTF-8 string (``value.tensor``, field
        8 of AttrValue; ``string_val``, field 8 of TensorProto)."""
        value = _attr(self.stream, node, "value")
        if value is None:
            return None
        tensors = [f for f in fields(self.stream, value.offset, value.offset + value.value)
                   if f.number == 8 and f.wire_type == LENGTH]
        if len(tensors) != 1:
            return None
        strings = [f for f in fields(self.stream, tensors[0].offset,
                                     tensors[0].offset + tensors[0].value)
                   if f.number == 8 and f.wire_type == LENGTH]
        if len(strings) != 1 or strings[0].value > _MAX_CONST:
            return None
        try:
            return read_payload(self.stream, strings[0], _MAX_CONST).decode("utf-8")
        except UnicodeDecodeError:
            return None

    def checkpoint(self, op: _Op) -> bool:
        """Every file a checkpoint op names comes from the loader's prefix."""
        data = op.data
        return all(i < len(data) and self.prefix(op.scope, data[i])
                   for i in _PATH_INPUTS.get(op.op, (0,)))

    def asset_table(self, op: _Op) -> bool:
        """A vocabulary table's file (input 1) is an argument of a function nothing in the
        graphs calls, which the object graph binds to a ``SavedAsset`` (on load: a file in
        the model's own assets/). That is how TF's resource initializers are saved."""
        data, scope = op.data, op.scope
        if len(data) < 2 or not scope[1]:
            return False
        ref = data[1]
        for _ in range(_MAX_FLOW):  # through Identity to the argument
            if ":" not in ref:
                break
            node = self.node(scope, ref)
            if node is None or node.op != "Identity" or len(node.data) != 1:
                return False
            ref = node.data[0]
        args = self._args(scope)
        bound = self.walk.bound.get(scope, [])
        if args is None or ref not in args or args.count(ref) != 1 or len(bound) != 1:
            return False
        if self.references(scope) or self.unsure:
            return False  # called from a graph: the caller chooses the file
        first = len(args) - len(bound[0])
        at = args.index(ref) - first
        return first >= 0 and at >= 0 and (op.meta, bound[0][at]) in self.walk.assets


def _standard_file_use(op: _Op, flow: _Flow) -> bool:
    """Checkpoint ops whose paths all come from the loader's checkpoint prefix, and vocabulary
    tables reading a file the object graph binds to the model's assets (see :class:`_Flow`)."""
    if op.op in ASSET_TABLE_OPS:
        return flow.asset_table(op)
    return op.op in CHECKPOINT_OPS and flow.checkpoint(op)


def _op_findings(source: Source, walk: _Walk, standard: set[int]) -> Iterator[Finding]:
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
        elif ((op.op in FILE_OPS or op.op in CHECKPOINT_OPS) and id(op) not in standard) or (
            op.op == "PrintV2" and op.output_stream.startswith("file://")
        ):
            yield finding(
                source, "tf.op.file", Severity.HIGH, f"SavedModel op touches files ({op.op})",
                detail=f"Node {where} reads or writes files when the graph runs"
                + (f" ({op.output_stream})" if op.output_stream else "")
                + "; " + _why_file(op),
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


def _why_file(op: _Op) -> str:
    if op.op in CHECKPOINT_OPS:
        return ("the path it uses is not built from the checkpoint prefix TensorFlow's loader "
                "passes (saver_def's filename placeholder) the way TF's own saver builds it, "
                "so the graph chooses what file it is, whatever the function is named.")
    if op.op in ASSET_TABLE_OPS:
        return ("the file is not one the object graph binds to the model's own assets/ "
                "(how TF saves a vocabulary table), so the graph chooses what file it reads.")
    return ("outside TensorFlow's own checkpoint and asset patterns that is not how models "
            "load their weights or vocabularies.")


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
