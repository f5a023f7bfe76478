"""Each chapter's headline experiment, registered with cvcourse.bench."""
