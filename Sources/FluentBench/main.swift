import FluentShop
print("x")
