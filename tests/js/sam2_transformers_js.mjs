// Segment one image with @huggingface/transformers (transformers.js) from a folder written by
// `sam2-hf export MODEL --format transformers.js` (tests/test_transformers_js.py runs it).
//
//   node sam2_transformers_js.mjs NPM_PREFIX REQUEST.json
//
// NPM_PREFIX: a folder whose node_modules holds @huggingface/transformers (installed outside the repository).
// REQUEST.json: {"model": folder, "image": raw RGB uint8 file, "width": W, "height": H,
//                "prompts": [{"input_points"?, "input_labels"?, "input_boxes"?}, ...], "out": result.json}
// as transformers.js' Sam2Processor takes them (image pixels). Writes to "out", for each prompt in order: iou_scores,
// object_score_logits and pred_masks (low-resolution logits) with their dims, and the masks of post_process_masks
// (uint8 0 / 1 at the image size); float32 / uint8 data base64-encoded. Also the processor's pixel_values and
// the library's version.

import { readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const [prefix, requestPath] = process.argv.slice(2);
const require = createRequire(path.join(path.resolve(prefix), 'package.json'));
const { env, AutoProcessor, Sam2Model, RawImage } = require('@huggingface/transformers');

const request = JSON.parse(readFileSync(requestPath, 'utf8'));
const folder = path.resolve(request.model);
env.allowRemoteModels = false; // the exported folder only, never the Hub
env.allowLocalModels = true;
env.localModelPath = path.dirname(folder) + path.sep;
const modelId = path.basename(folder);

const base64 = (typed) => Buffer.from(typed.buffer, typed.byteOffset, typed.byteLength).toString('base64');
const tensor = (t) => ({ dims: t.dims, type: t.type, data: base64(t.data) });

const processor = await AutoProcessor.from_pretrained(modelId);
const model = await Sam2Model.from_pretrained(modelId, { device: 'cpu' });
const image = new RawImage(new Uint8ClampedArray(readFileSync(request.image)), request.width, request.height, 3);

const results = [];
let pixelValues = null;
for (const prompt of request.prompts) {
    const inputs = await processor(image, prompt);
    pixelValues ??= tensor(inputs.pixel_values);
    const embeddings = await model.get_image_embeddings(inputs);
    const outputs = await model({ ...inputs, ...embeddings });
    const [masks] = await processor.post_process_masks(
        outputs.pred_masks,
        inputs.original_sizes,
        inputs.reshaped_input_sizes,
    );
    results.push({
        iou_scores: tensor(outputs.iou_scores),
        object_score_logits: tensor(outputs.object_score_logits),
        pred_masks: tensor(outputs.pred_masks),
        masks: { dims: masks.dims, type: masks.type, data: base64(masks.data) },
    });
}
writeFileSync(request.out, JSON.stringify({ version: env.version, pixel_values: pixelValues, results }));
