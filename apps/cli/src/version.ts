declare const __VIRTBUS_VERSION__: string | undefined;

/** Set by the build (package version and commit); a run from the sources says so. */
export const VERSION = typeof __VIRTBUS_VERSION__ === 'string' ? __VIRTBUS_VERSION__ : '0.1.0 (sources)';
