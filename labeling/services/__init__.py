"""The product's writes. Each service is a keyword-only, typed function named <entity>_<action>."""
