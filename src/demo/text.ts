/** The built-in training text of the demo page: short, repetitive English, learnable in a minute. */
export const DEMO_TEXT = `the cat sat on the mat. the dog sat on the log. the cat saw the dog and the dog saw the cat.
a bird sang in the tree, and the cat and the dog sat still to hear the bird sing.
the sun rose over the hill. the sun set over the sea. the moon rose and the stars came out.
the cat slept on the mat, the dog slept on the log, and the bird slept in the tree.
in the morning the sun rose again, the bird sang again, and the cat and the dog woke up.
`.repeat(4);
