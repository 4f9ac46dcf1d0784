"""Im2Col -> [FMPadding] + sliding window; MaxPoolNHWC -> StreamingMaxPool; a nearest Resize -> upsample."""

from __future__ import annotations

from onnx import helper

from qnnflow.transforms.graph import fresh_name
from qnnflow.transforms.to_hw.common import HW_DOMAIN, node_attr, replace_node, tensor_dtype
from qnnflow.transforms.upsample import nearest_factors


def convert_im2col(model, im2col):
    """Im2Col -> [FMPadding] + ConvolutionInputGenerator (ConvolutionInputGenerator1D for a height-1 image and kernel)."""
    x = im2col.input[0]
    n, h, w, c = model.get_tensor_shape(x)
    kh, kw = node_attr(im2col, "kernel_size")
    sh, sw = node_attr(im2col, "stride")
    pads = list(node_attr(im2col, "pad_amount", [0, 0, 0, 0]))
    dtype = tensor_dtype(model, x)
    nodes = []
    if any(pads):
        padded = fresh_name(model, f"{im2col.name}_padded")
        h, w = h + pads[0] + pads[2], w + pads[1] + pads[3]
        model.set_tensor_shape(padded, [n, h, w, c])
        nodes.append(helper.make_node(
            "FMPadding", [x], [padded], domain=HW_DOMAIN, name=f"{im2col.name}_pad",
            ImgDim=list(model.get_tensor_shape(x)[1:3]), Padding=pads, NumChannels=c, SIMD=1,
            inputDataType=dtype.name, PadValue=int(node_attr(im2col, "pad_value", 0)),
        ))
        x = padded
    _, oh, ow, _ = model.get_tensor_shape(im2col.output[0])
    depthwise = int(node_attr(im2col, "depthwise", 0))
    # a Conv1d or 1xK kernel: the ring-buffer unit, which has no depthwise word order
    one_d = h == 1 and kh == 1 and not depthwise
    nodes.append(helper.make_node(
        "ConvolutionInputGenerator1D" if one_d else "ConvolutionInputGenerator", [x], [im2col.output[0]],
        domain=HW_DOMAIN, name=im2col.name,
        ConvKernelDim=[kh, kw], IFMChannels=c, IFMDim=[h, w], OFMDim=[oh, ow], Stride=[sh, sw],
        Dilation=[1, 1], SIMD=1, inputDataType=dtype.name, outputDataType=dtype.name,
        depthwise=depthwise,
    ))
    index = list(model.graph.node).index(im2col)
    model.graph.node.remove(im2col)
    for offset, node in enumerate(nodes):
        model.graph.node.insert(index + offset, node)


def convert_maxpool(model, pool):
    """MaxPoolNHWC -> StreamingMaxPool."""
    _, h, w, c = model.get_tensor_shape(pool.input[0])
    node = helper.make_node(
        "StreamingMaxPool", [pool.input[0]], [pool.output[0]], domain=HW_DOMAIN, name=pool.name,
        ImgDim=[h, w], PoolDim=list(node_attr(pool, "kernel_shape")), Stride=list(node_attr(pool, "strides")),
        NumChannels=c, PE=1, dataType=tensor_dtype(model, pool.input[0]).name,
    )
    replace_node(model, [pool], node)


def convert_resize(model, resize):
    """A nearest upsample of an integer NHWC tensor by (1, sh, sw, 1) -> UpsampleNearestNeighbour."""
    x = resize.input[0]
    shape, dtype = model.get_tensor_shape(x), tensor_dtype(model, x)
    factors = nearest_factors(model, resize)
    if len(shape) != 4 or factors[0] != 1 or factors[3] != 1 or not dtype.is_integer():
        return
    node = helper.make_node(
        "UpsampleNearestNeighbour", [x], [resize.output[0]], domain=HW_DOMAIN, name=resize.name,
        ImgDim=list(shape[1:3]), Factor=list(factors[1:3]), NumChannels=shape[3], SIMD=1, inputDataType=dtype.name,
    )
    replace_node(model, [resize], node)
