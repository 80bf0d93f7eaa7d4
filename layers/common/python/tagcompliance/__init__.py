"""Domain core of the tag-compliance product.

Plain Python: no MCP, Lambda or CDK imports. The gateway, the Lambda handlers and the CDK app are
thin adapters around the functions in this package.
"""

__version__ = "0.1.0"
