"""A prefetch hint for compiled loops: start loading memory that a loop will read soon.

A sample reads rows at random from a buffer larger than the caches, and each read waits for
memory (about 100 ns). A compiled loop that copies one drawn row after another keeps only the
few reads in flight that the CPU's instruction window allows; prefetching a block of rows
before copying them lets the memory system fetch them all at once. numba has no prefetch of its
own: this emits LLVM's ``llvm.prefetch`` intrinsic. A hint never changes results.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.extending import intrinsic

CACHE_LINE_WORDS = 8  # 8-byte words in a cache line: one prefetch fetches a line


@intrinsic
def prefetch(typingctx, array, index):
    """Hint (in a numba-compiled function) that ``array[index]`` will be read soon.

    ``array`` is a 1-d array, ``index`` an integer in range (not checked: it is only a hint).
    """
    if not (
        isinstance(array, types.Array) and array.ndim == 1 and isinstance(index, types.Integer)
    ):
        return None

    def codegen(context, builder, signature, args):
        array_type, _ = signature.args
        data = context.make_array(array_type)(context, builder, args[0]).data
        address = builder.gep(data, [args[1]])
        byte_pointer = builder.bitcast(address, ir.IntType(8).as_pointer())
        i32 = ir.IntType(32)
        function = builder.module.declare_intrinsic(
            "llvm.prefetch", [byte_pointer.type],
            ir.FunctionType(ir.VoidType(), [byte_pointer.type, i32, i32, i32]),
        )  # fmt: skip
        # Arguments: a read (0), high temporal locality (3), of data (1).
        builder.call(function, [byte_pointer, *(ir.Constant(i32, v) for v in (0, 3, 1))])
        return context.get_dummy_value()

    return types.void(array, index), codegen
