"""simplify: constant folding and graph clean-up with onnxsim.

When onnxsim fails on a model (it does on some control flow and very large graphs) the task keeps
the exported graph unchanged and says so in its result and on the terminal: never silently.
"""

from __future__ import annotations

from dataclasses import dataclass

from trtbuild import toolchain
from trtbuild.spec.model import Cell, Spec, TensorSpec
from trtbuild.tasks.base import Derived, JsonDict, TaskContext, TaskKind
from trtbuild.tasks.lint import baked_dims
from trtbuild.tasks.params import OutputParams, output_params

NAME = "simplify"
GRAPH = "model.onnx"  # its input and its output


@dataclass(frozen=True)
class SimplifyParams:
    # The declared inputs and outputs: simplify lints the dynamic dims it may fold.
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[OutputParams, ...]


class Simplify(TaskKind[SimplifyParams]):
    name = NAME
    version = 4  # 3: shape annotations dropped; 4: the inputs' `values` generators replace `value_range`
    outputs = (GRAPH,)

    def derive(self, spec: Spec, cell: Cell) -> Derived[SimplifyParams] | None:
        if not spec.simplify:
            return None
        return Derived(SimplifyParams(spec.inputs, output_params(spec)))

    def tools(self, params: SimplifyParams) -> JsonDict:
        return dict(toolchain.versions(("onnx", "onnxsim")))

    def run(self, ctx: TaskContext[SimplifyParams]) -> JsonDict:
        import onnx
        import onnxsim

        from trtbuild.tasks.shape_annotations import drop_intermediate_shapes

        model = onnx.load(str(ctx.inputs[GRAPH]))
        nodes_before = len(model.graph.node)
        try:
            simplified, check_ok = onnxsim.simplify(model)
        except Exception as error:  # onnxsim raises bare RuntimeErrors from its C++ core
            return _pass_through(ctx, f"onnxsim failed: {type(error).__name__}: {str(error).strip()[:500]}")
        if not check_ok:
            return _pass_through(ctx, "onnxsim's output did not match the original graph on random inputs")
        baked = baked_dims(simplified, ctx.params.inputs, ctx.params.outputs)
        if baked:
            return _pass_through(ctx, "onnxsim fixed dynamic dims: " + "; ".join(baked))
        # onnxsim annotates tensors from its own shape inference (dims named unk__N): not handed on.
        dropped = drop_intermediate_shapes(simplified)
        onnx.save(simplified, str(ctx.output(GRAPH)))
        return {
            "simplified": True,
            "nodes_before": nodes_before,
            "nodes_after": len(simplified.graph.node),
            "shape_annotations_dropped": dropped,
        }


def _pass_through(ctx: TaskContext[SimplifyParams], reason: str) -> JsonDict:
    ctx.warn(f"graph passed through unsimplified: {reason}")
    import shutil

    shutil.copyfile(ctx.inputs[GRAPH], ctx.output(GRAPH))
    return {"simplified": False, "reason": reason}


KIND = Simplify()
