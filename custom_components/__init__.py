"""Makes custom_components a regular package for the tests (the usual layout for a custom
integration repository), so `import custom_components.joulegate` finds this folder.

Not part of the integration: HACS installs only custom_components/joulegate/.
"""
