/** A stylesheet imported for its side effect: esbuild bundles it into the console's one CSS file. */
declare module '*.css';
