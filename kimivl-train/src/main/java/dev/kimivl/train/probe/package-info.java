/**
 * Probes: quick measurements of what a trained checkpoint's frozen vision tower gives the language model, minutes
 * instead of a training run (TRAINING.md, sessions 10-11, where they first lived outside the repo as
 * {@code RealFeatProbe}, {@code TokenColourProbe} and {@code PosProbe}).
 *
 * <pre>
 * ./kimivl probe binding --vision runs/X/stages/01-vit [--recipe recipes/nano.json] [--steps 800] [--pool 1150]
 *                        [--heldout 150] [--side 160 | --min-side 96 --max-side 160] [--question where-colour|where|what]
 *                        [--log-every 100] [--seed 1] [--json FILE]
 * ./kimivl probe tokens  --vision runs/X/stages/01-vit [-n 300] [--heldout 100] [--lambda L]
 * </pre>
 *
 * <ul>
 *   <li>{@link dev.kimivl.train.probe.BindingProbe}: a fresh language model learns grounding questions ("Where is the
 *       red shape?" "At the top left.") on the frozen image tokens of a pool of scenes; its accuracy on held-out
 *       scenes says whether the look-up carries to new images or the model memorised the training images.</li>
 *   <li>{@link dev.kimivl.train.probe.TokenProbe}: ridge read-outs of each merged token's colour and relative place.</li>
 * </ul>
 *
 * Both load the tower through {@link dev.kimivl.train.probe.FrozenVision}; the read-outs are
 * {@link dev.kimivl.train.probe.Ridge}.
 */
package dev.kimivl.train.probe;
