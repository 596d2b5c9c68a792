// SPDX-License-Identifier: MIT
// tests/onnx/run_ort.js: runs an ONNX model on ONNX Runtime (npm onnxruntime-node, CPU).
//
//   node run_ort.js ORT_DIR MODEL.onnx INPUT.f32 DIMS OUTPUT.f32 [all|disabled]
//
// ORT_DIR holds node_modules/onnxruntime-node (npm install --ignore-scripts onnxruntime-node).
// INPUT.f32: float32 little-endian, the whole input [N, DIMS...]; DIMS: the per-item shape,
// comma separated (e.g. 1,28,28); N follows from the file size. OUTPUT.f32: the model's first
// output, float32. The last argument sets the graph optimization level: "all" (default: ORT's
// QDQ fusion into QLinearConv / QGemm, the integer path) or "disabled" (every node as written,
// in float). One intra-op thread. Prints the ORT version and the output shape.
'use strict';
const fs = require('fs');
const path = require('path');

async function main() {
  const [ortDir, model, input, dimsArg, output, level = 'all'] = process.argv.slice(2);
  if (!output) {
    console.error('usage: run_ort.js ORT_DIR MODEL INPUT.f32 DIMS OUTPUT.f32 [all|disabled]');
    process.exit(2);
  }
  const ort = require(path.join(path.resolve(ortDir), 'node_modules', 'onnxruntime-node'));
  const dims = dimsArg.split(',').map(Number);
  const per = dims.reduce((a, b) => a * b, 1);
  const buf = fs.readFileSync(input);
  const x = new Float32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
  if (x.length % per !== 0) throw new Error(`${input}: ${x.length} floats is not a multiple of ${per}`);
  const n = x.length / per;
  const session = await ort.InferenceSession.create(model, {
    graphOptimizationLevel: level,
    intraOpNumThreads: 1,
    interOpNumThreads: 1,
  });
  const feeds = {};
  feeds[session.inputNames[0]] = new ort.Tensor('float32', x, [n, ...dims]);
  const out = (await session.run(feeds))[session.outputNames[0]];
  fs.writeFileSync(output, Buffer.from(out.data.buffer, out.data.byteOffset, out.data.byteLength));
  console.log(`onnxruntime-node ${ort.env.versions.node} (${level}): ${model} -> [${out.dims}]`);
}

main().catch((e) => {
  console.error(`run_ort.js: ${e.message || e}`);
  process.exit(1);
});
